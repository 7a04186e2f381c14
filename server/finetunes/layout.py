"""The names in the finetunes folder (drawn in `server.finetunes.store`), including those of the
temporary entries an interrupted write leaves behind (swept by `server.finetunes.leftovers`).

    <adapters_dir>/.finetunes/
    ├── .lock                            held while a finetune is created or completed
    ├── .new-*/                          a finetune's folder being built (Finetunes._add)
    ├── .*.tmp                           engine.durable.write_atomically's temp files
    └── <finetune id>/
        ├── finetune.json
        ├── .*.tmp                       the same, of finetune.json
        ├── .candidate-*/                an adapter being assembled (Finetunes._publish)
        ├── adapter/
        └── incoming/.upload-*.part      an upload streaming in (server.finetunes.uploads)
"""

DATA_DIR = ".finetunes"
RECORD_FILE = "finetune.json"
LOCK_FILE = ".lock"
STAGING_DIR = "adapter"
INCOMING_DIR = "incoming"

NEW_PREFIX = ".new-"
CANDIDATE_PREFIX = ".candidate-"
UPLOAD_PREFIX = ".upload-"
UPLOAD_SUFFIX = ".part"
# How engine.durable.write_atomically names its temp files (test_leftovers holds it to that).
DURABLE_TEMP_PREFIX = "."
DURABLE_TEMP_SUFFIX = ".tmp"

"""The `lora` request field: find the adapter, or refuse with a Workers AI error.

Adapter errors (`engine.lora.store`) become Workers AI errors here and nowhere else.
"""

import logging

from engine.lora.format import AdapterInvalid, AdapterMissingFiles
from engine.lora.store import AdapterNameInvalid, AdapterNotFound, AdapterStore
from engine.types import Adapter
from server.errors import (
    BadInput,
    FinetuneMissingFiles,
    FinetuneNotFound,
    InvalidFinetune,
    LoraNotSupported,
)

logger = logging.getLogger(__name__)


def resolve_lora(model_name: str, store: AdapterStore | None, lora: str | None) -> Adapter | None:
    """The validated adapter a request asks for, or None without `lora`.

    `store` is None when the model is served without LoRA. Raises WorkersAIError subclasses.
    """
    if not lora:
        return None
    if store is None:
        raise LoraNotSupported(model_name)
    try:
        return store.resolve(lora)
    except AdapterNameInvalid as error:
        raise BadInput(f"lora: {error}") from None
    except AdapterNotFound:
        raise FinetuneNotFound(lora) from None
    except AdapterMissingFiles as error:
        logger.warning("LoRA adapter %r of %s: %s", lora, model_name, error)
        raise FinetuneMissingFiles(lora, error.missing) from None
    except AdapterInvalid as error:
        logger.warning("LoRA adapter %r of %s refused: %s", lora, model_name, error)
        raise InvalidFinetune(lora, str(error)) from None

"""AMX for vLLM's CPU attention, asked for in each of its worker processes.

On a CPU with AMX (Intel Xeon, 4th generation and later), vLLM's CPU attention kernel runs on
AMX tiles for bfloat16. Linux lets a process use those tiles only after it has asked for them
(`arch_prctl(ARCH_REQ_XCOMP_PERM)`); before that, the first tile instruction raises SIGILL and
the process dies. vLLM 0.32's attention kernel does not ask; other kernels on the way of a
longer prompt do. So an engine whose first request had a one-token prompt lost its worker to
SIGILL in `cpu_attention_with_kv_cache` (`Worker proc VllmWorker-0 died unexpectedly (exit
code: -4)`), while one whose first prompt had five tokens served one-token prompts afterwards;
every engine a swap group started died that way, since its probe is one token.

vLLM imports the class named by `worker_extension_cls` in each worker process, before the
worker loads a model (`engine.vllm.engine.engine_args` names this one on the CPU build).
Importing this module asks for AMX there, through torch (`torch.cpu._init_amx`, which does
nothing where AMX is missing). The class adds nothing to the worker.
"""

import torch

torch.cpu._init_amx()


class AmxPermission:
    """The `worker_extension_cls` whose import asks for AMX in vLLM's worker process."""

"""`workers-ai-local check`: what a profile would serve, and what stops it, without starting an
engine or downloading weights.

Per model it shows the Workers AI name, where the answers come from (checkpoint, builtin, or
remote URL), quantization, the window served, LoRA, and the swap group. Findings name the
setting to change (`models[1].engine.vllm_args.blok_size`); errors make the profile unusable,
warnings do not. Checks beyond what loading the settings does:

    vllm_args          against vLLM's own engine arguments (engine.vllm.args)
    GPUs (gpu device)  gpu_ids against tensor_parallel_size; engines sharing a GPU claim at most
                       all of it, unless they take turns in one swap group, whose members share
                       their GPUs
    swap groups        'sleep' needs a GPU; the member listed last starts awake
    remote             the URL, the API key's variable; with `probe`, the upstream's /v1/models
"""

import json
import urllib.error
import urllib.request
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlsplit

from engine.config import EngineConfig, SwapGroupConfig
from engine.remote.config import RemoteConfig
from server.auth import check_token_policy
from server.generation.specs import MODELS
from server.settings import ConfigError, ModelSettings, Settings

Device = Literal["cpu", "gpu"]

PROBE_TIMEOUT_S = 5.0
# Above this share of a GPU, an engine may not fit beside its sleeping swap partners.
SLEEP_HEADROOM = 0.9


@dataclass(frozen=True, slots=True)
class Finding:
    level: Literal["error", "warning"]
    where: str  # the setting's path, e.g. models[1].engine.gpu_ids
    message: str

    def __str__(self) -> str:
        return f"{self.level}: {self.where}: {self.message}"


@dataclass(slots=True)
class Report:
    """What `check` found: per model, (label, value) lines; then the findings."""

    device: Device
    listens: str = ""
    models: dict[str, list[tuple[str, str]]] = field(default_factory=dict)
    findings: list[Finding] = field(default_factory=list)

    @property
    def usable(self) -> bool:
        return not any(finding.level == "error" for finding in self.findings)

    def error(self, where: str, message: str) -> None:
        self.findings.append(Finding("error", where, message))

    def warning(self, where: str, message: str) -> None:
        self.findings.append(Finding("warning", where, message))


def check_settings(
    settings: Settings, *, device: Device, environ: Mapping[str, str], probe: bool = False
) -> Report:
    """Check `settings` as the server would run them on `device`; reads nothing but `environ`
    (and, with `probe`, each remote upstream's /v1/models)."""
    tokens = len(settings.api_tokens)
    report = Report(device, f"{settings.host}:{settings.port}, {_count(tokens, 'API token')}")
    try:
        check_token_policy(settings)
    except ConfigError as error:
        report.error("host", str(error))
    first_of: dict[str, str] = {}  # engine settings -> the first model with them
    for index, model in enumerate(settings.models):
        where = f"models[{index}]"
        lines = report.models.setdefault(model.name, [])
        if model.engine is not None:
            shared = None
            if settings.swap_group_of(model.name) is None:
                shared = first_of.setdefault(model.engine.model_dump_json(), model.name)
            lines += _local(report, f"{where}.engine", model, model.engine, shared)
        elif model.remote is not None:
            lines += _remote(report, f"{where}.remote", model, model.remote, environ, probe)
        lines.append(("swap group", _swap_state(settings, model.name, device)))
    for index, group in enumerate(settings.swap_groups):
        _check_swap_group(report, f"swap_groups[{index}]", settings, group)
    if device == "gpu":
        _check_gpu_sharing(report, settings)
    return report


def render(report: Report, config_path: Path, device_note: str) -> str:
    lines = [
        f"workers-ai-local check: {config_path}",
        f"device: {report.device} ({device_note})",
        f"listens on {report.listens}",
    ]
    for name, details in report.models.items():
        lines += ["", name]
        lines += [f"  {label:<13} {value}" for label, value in details]
    if report.findings:
        lines.append("")
        lines += [str(finding) for finding in report.findings]
    errors = sum(finding.level == "error" for finding in report.findings)
    warnings = len(report.findings) - errors
    counts = ", ".join(
        [_count(len(report.models), "model"), _count(errors, "error"), _count(warnings, "warning")]
    )
    lines += ["", f"{'usable' if report.usable else 'NOT usable'}: {counts}"]
    return "\n".join(lines)


def _count(number: int, noun: str) -> str:
    return f"{number or 'no'} {noun}{'' if number == 1 else 's'}"


def window(workers_ai: int, max_model_len: int) -> str:
    """The window served, as `check` and the startup log say it."""
    served = min(workers_ai, max_model_len)
    if served < workers_ai:
        return f"{served} tokens (Workers AI: {workers_ai}; 5021 beyond {served})"
    return f"{served} tokens (Workers AI's full window)"


def _local(
    report: Report, where: str, model: ModelSettings, config: EngineConfig, shared: str | None
) -> list[tuple[str, str]]:
    if config.builtin is not None:
        source = f"in-process, builtin {config.builtin} (made on first start, or by `prepare`)"
    else:
        source = f"in-process, checkpoint {config.checkpoint}"
        _check_checkpoint_path(report, f"{where}.checkpoint", str(config.checkpoint))
    lines = [("engine", source)]
    if shared is not None and shared != model.name:
        lines.append(("shared", f"one engine with {shared} (identical engine settings)"))
    precision = f"dtype {config.dtype}, KV cache {config.kv_cache_dtype}"
    lines += [
        ("quantization", f"{config.quantization or 'none'} ({precision})"),
        ("window", window(MODELS[model.name].context_window, config.max_model_len)),
        ("LoRA", _lora(config.enable_lora, config.max_lora_rank)),
        ("memory", _memory(report, where, config)),
    ]
    if config.vllm_args:
        given = ", ".join(f"{key}={value!r}" for key, value in config.vllm_args.items())
        lines.append(("vllm_args", given))
        _check_vllm_args(report, where, config)
    return lines


def _lora(enabled: bool, rank: int, published: Path | None = None) -> str:
    to = f", published to {published}" if published else ""
    return f"on (adapters up to rank {rank}{to})" if enabled else "off"


def _memory(report: Report, where: str, config: EngineConfig) -> str:
    if report.device == "cpu":
        if config.gpu_ids is not None:
            report.warning(f"{where}.gpu_ids", "ignored by the CPU build")
        return f"KV cache {config.cpu_kv_cache_gib:g} GiB (cpu_kv_cache_gib)"
    gpus = _gpus(config)
    if len(set(gpus)) < len(gpus) or min(gpus) < 0:
        report.error(f"{where}.gpu_ids", f"{gpus} must be distinct GPU numbers from 0")
    elif len(gpus) > config.tensor_parallel_size:
        report.warning(
            f"{where}.gpu_ids",
            f"{len(gpus)} GPUs listed for tensor_parallel_size {config.tensor_parallel_size}: "
            f"the engine uses the first {config.tensor_parallel_size}",
        )
    listed = "" if config.gpu_ids is not None else " (default: gpu_ids not set)"
    kv = ""
    if config.kv_cache_memory_bytes is not None:
        kv = f", KV cache {config.kv_cache_memory_bytes / 2**30:.3g} GiB"
    gpu_list = ", ".join(map(str, gpus))
    return f"GPU {gpu_list}{listed}, gpu_memory_utilization {config.gpu_memory_utilization}{kv}"


def _gpus(config: EngineConfig) -> list[int]:
    """The GPUs an engine uses: its gpu_ids, else the first tensor_parallel_size visible."""
    if config.gpu_ids is not None:
        return config.gpu_ids
    return list(range(config.tensor_parallel_size))


def _check_checkpoint_path(report: Report, where: str, checkpoint: str) -> None:
    # A Hugging Face id ("Qwen/QwQ-32B") also looks like a relative path; only what is clearly
    # a path is looked at. A warning: `check` may run where the volume is not mounted.
    looks_like_path = checkpoint.startswith(("/", "./", "../", "~"))
    if looks_like_path and not Path(checkpoint).expanduser().is_dir():
        report.warning(where, f"{checkpoint} is not a directory here")


def _check_vllm_args(report: Report, where: str, config: EngineConfig) -> None:
    from engine.vllm.args import vllm_args_problems

    try:
        problems = vllm_args_problems(config, cpu=report.device == "cpu")
    except ImportError:
        report.warning(f"{where}.vllm_args", "not checked: vLLM is not installed here")
        return
    for problem in problems:
        report.error(f"{where}.vllm_args.{problem.name}", problem.message)


def _remote(
    report: Report,
    where: str,
    model: ModelSettings,
    remote: RemoteConfig,
    environ: Mapping[str, str],
    probe: bool,
) -> list[tuple[str, str]]:
    _check_url(report, f"{where}.url", remote.url)
    key = environ.get(remote.api_key_env or "") or None
    key_line = "none" if remote.api_key_env is None else f"from ${remote.api_key_env}"
    if remote.api_key_env is not None and key is None:
        key_line = f"${remote.api_key_env} is not set"
        report.warning(
            f"{where}.api_key_env",
            f"{remote.api_key_env} is not set here; the remote engine does not start without it",
        )
    workers_ai = MODELS[model.name].context_window
    max_model_len = remote.max_model_len
    if probe:
        max_model_len = _probed_len(report, where, remote, _probe(report, where, remote, key))
    if max_model_len is None:
        served = f"at most {workers_ai} tokens: the upstream's max_model_len, read at start"
    else:
        served = window(workers_ai, max_model_len)
    return [
        ("engine", f"remote {remote.url}, served_model_name {remote.served_model_name}"),
        ("tokenizer", remote.tokenizer),
        ("quantization", "the upstream's"),
        ("window", served),
        ("LoRA", _lora(remote.enable_lora, remote.max_lora_rank, remote.lora_dir)),
        ("API key", key_line),
    ]


def _check_url(report: Report, where: str, url: str) -> None:
    parts = urlsplit(url)
    try:
        parts.port  # noqa: B018 - parsing the port is the check
    except ValueError as error:
        report.error(where, f"{url}: {error}")
        return
    if not parts.hostname:
        report.error(where, f"{url} names no host")
    elif parts.query or parts.fragment:
        report.error(where, f"{url}: the base URL takes no query or fragment")
    elif parts.path.rstrip("/").endswith("/v1"):
        report.warning(where, f"{url}: give the base URL; the server adds /v1/... itself")


def _probed_len(
    report: Report, where: str, remote: RemoteConfig, upstream: int | None
) -> int | None:
    """The max_model_len the remote engine will use, as it decides at start: the configured
    one, at most the upstream's; the upstream's when none is configured."""
    configured = remote.max_model_len
    if configured is not None and upstream is not None and upstream < configured:
        report.warning(
            f"{where}.max_model_len",
            f"{configured} is more than the upstream serves: {upstream} will be served",
        )
        return upstream
    return configured or upstream


def _probe(report: Report, where: str, remote: RemoteConfig, key: str | None) -> int | None:
    """GET the upstream's /v1/models: the served model must be listed; returns its
    max_model_len (an error when neither it nor the settings give one)."""
    request = urllib.request.Request(f"{remote.url}/v1/models")
    if key:
        request.add_header("Authorization", f"Bearer {key}")
    try:
        with urllib.request.urlopen(request, timeout=PROBE_TIMEOUT_S) as response:
            listed: Any = json.load(response)
    except urllib.error.HTTPError as error:
        report.error(f"{where}.url", f"{remote.url}/v1/models answered HTTP {error.code}")
        return None
    except (urllib.error.URLError, TimeoutError, ConnectionError) as error:
        reason = getattr(error, "reason", error)
        report.error(f"{where}.url", f"{remote.url}/v1/models: cannot connect ({reason})")
        return None
    except ValueError:
        report.error(f"{where}.url", f"{remote.url}/v1/models did not answer JSON")
        return None
    entries = listed.get("data") if isinstance(listed, dict) else None
    models = {entry.get("id"): entry for entry in entries or [] if isinstance(entry, dict)}
    entry = models.get(remote.served_model_name)
    if entry is None:
        known = ", ".join(sorted(map(str, models))) or "none"
        report.error(
            f"{where}.served_model_name",
            f"{remote.served_model_name} is not served upstream (its models: {known})",
        )
        return None
    length = entry.get("max_model_len")
    if isinstance(length, int) and length > 0:
        return length
    if remote.max_model_len is None:
        report.error(f"{where}.max_model_len", "the upstream does not report it: set it here")
    return None


def _method(group: SwapGroupConfig, device: Device) -> str:
    if group.method != "auto":
        return group.method
    return "sleep" if device == "gpu" else "restart"


def _swap_state(settings: Settings, name: str, device: Device) -> str:
    group = settings.swap_group_of(name)
    if group is None:
        return "none"
    method = _method(group, device)
    how = f"{group.name} ({method}{', auto' if group.method == 'auto' else ''})"
    if name == group.models[-1]:
        return f"{how}: awake at start (listed last)"
    return f"{how}: {'asleep' if method == 'sleep' else 'stopped'} at start"


def _check_swap_group(
    report: Report, where: str, settings: Settings, group: SwapGroupConfig
) -> None:
    if report.device == "cpu":
        if group.method == "sleep":
            report.error(f"{where}.method", "sleep mode needs a GPU: use 'restart' or 'auto'")
        return
    configs = {model.name: model.engine for model in settings.models if model.engine}
    used = {name: sorted(_gpus(configs[name])) for name in group.models}
    if len({tuple(gpus) for gpus in used.values()}) > 1:
        each = "; ".join(f"{name} on GPU {gpus}" for name, gpus in used.items())
        report.error(f"{where}.models", f"members must use the same GPUs: {each}")
    if _method(group, "gpu") != "sleep":
        return
    for name in group.models:
        share = configs[name].gpu_memory_utilization
        if share > SLEEP_HEADROOM:
            index = next(i for i, model in enumerate(settings.models) if model.name == name)
            report.warning(
                f"models[{index}].engine.gpu_memory_utilization",
                f"{share:g} while the other members of {group.name} sleep: a sleeping engine "
                f"keeps some GPU memory (CUDA context, allocator); vLLM's sleep-mode guide "
                f"leaves 10-15 % of the GPU for it",
            )


def _check_gpu_sharing(report: Report, settings: Settings) -> None:
    """Per GPU, the gpu_memory_utilization of the engines on it must add up to at most 1. A
    swap group counts once, with its largest member: its members take turns."""
    claims: dict[int, list[tuple[str, str, float]]] = {}  # GPU -> (who, setting, share)
    seen: set[str] = set()
    for index, model in enumerate(settings.models):
        config = model.engine
        group = settings.swap_group_of(model.name)
        if config is None:
            continue
        if group is None:
            # Models with identical engine settings share one engine (not in swap groups).
            if config.model_dump_json() in seen:
                continue
            seen.add(config.model_dump_json())
        where = f"models[{index}].engine.gpu_memory_utilization"
        if group is not None:
            if model.name != group.models[0]:
                continue
            members = [m.engine for m in settings.models if m.name in group.models and m.engine]
            share = max(member.gpu_memory_utilization for member in members)
            who = f"swap group {group.name}"
        else:
            share, who = config.gpu_memory_utilization, model.name
        for gpu in set(_gpus(config)):
            claims.setdefault(gpu, []).append((who, where, share))
    for gpu, on_gpu in sorted(claims.items()):
        total = sum(share for _, _, share in on_gpu)
        if total > 1 + 1e-9:
            each = " + ".join(f"{who} {share:g}" for who, _, share in on_gpu)
            report.error(
                on_gpu[-1][1],
                f"the engines on GPU {gpu} claim {total:.2f} of it ({each}), more than all of "
                "it: lower gpu_memory_utilization, or put the models in one swap group",
            )

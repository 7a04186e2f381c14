"""One settings tree: a YAML profile from `configs/`, then environment overrides, then CLI flags.

Only the CLI entry point calls `load_settings`; everything else receives a `Settings`.
"""

import ipaddress
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from engine.config import EngineConfig, SwapGroupConfig
from engine.remote.config import RemoteConfig
from server.generation.specs import MODELS
from server.logs import LogFormat

DEFAULT_CACHE_DIR = Path("~/.cache/workers-ai-local")


class ConfigError(Exception):
    """The configuration cannot be used; the message tells the user what to change."""


class ModelSettings(BaseModel):
    """One served Workers AI model and the engine behind it."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str
    engine: EngineConfig | None = Field(
        default=None, description="An engine this process runs (vLLM in-process)."
    )
    remote: RemoteConfig | None = Field(
        default=None, description="A vLLM server or router elsewhere that generates instead."
    )
    chat_template: Literal["official", "checkpoint"] = Field(
        default="official",
        description="'official': the Workers AI model's own template (ours, byte-identical); "
        "'checkpoint': the template that ships with the checkpoint (for stand-in models).",
    )
    stand_in: str | None = Field(
        default=None,
        description="Set when another model answers under this name; shown in logs and in the "
        "X-Workers-AI-Local-Stand-In response header.",
    )
    json_after_reasoning: bool = Field(
        default=False,
        description="JSON mode lets the model reason first and applies the grammar after "
        "</think> (Workers AI applies it from the first token). Requests can override it.",
    )

    @field_validator("name")
    @classmethod
    def _known_model(cls, name: str) -> str:
        if name not in MODELS:
            known = ", ".join(sorted(MODELS))
            raise ValueError(f"'{name}' is not a model this server can serve (known: {known})")
        return name

    @model_validator(mode="after")
    def _one_engine(self) -> "ModelSettings":
        if (self.engine is None) == (self.remote is None):
            raise ValueError("set exactly one of 'engine' (in this process) and 'remote'")
        return self

    @property
    def local_engine(self) -> EngineConfig:
        """The in-process engine's settings; only for models that have one."""
        if self.engine is None:
            raise ConfigError(f"{self.name} is served by a remote engine")
        return self.engine


def _split_commas(value: Any) -> Any:
    if isinstance(value, str):
        return [item.strip() for item in value.split(",") if item.strip()]
    return value


class Settings(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    host: str = "127.0.0.1"
    port: int = Field(default=8787, ge=1, le=65535)
    api_tokens: list[str] = Field(default_factory=list)
    account_ids: list[str] = Field(
        default_factory=list, description="When set, only these account ids are served."
    )
    request_timeout_s: float = Field(default=600, gt=0)
    cache_dir: Path = DEFAULT_CACHE_DIR
    adapters_dir: Path | None = Field(
        default=None,
        description="LoRA adapters: <adapters_dir>/<model slug>/<adapter name>/ (see "
        "engine.lora.store); default <cache_dir>/adapters.",
    )
    max_finetune_file_bytes: int = Field(
        default=500 * 2**20,
        ge=1,
        description="The largest finetune asset an upload may send (Workers AI: adapters under "
        "500 MB); enforced while the upload streams in.",
    )
    max_request_bytes: int = Field(
        default=4 * 2**20,
        ge=1024,
        description="The largest JSON request body; larger ones get 413 before they are parsed. "
        "4 MiB holds an 80000-token prompt many times over.",
    )
    drain_timeout_s: float = Field(
        default=30,
        ge=0,
        description="On SIGTERM or SIGINT, the seconds running requests get to finish before "
        "they are ended with a 503 (in-band for streams); see server.http.drain.",
    )
    models: list[ModelSettings] = Field(min_length=1)
    swap_groups: list[SwapGroupConfig] = Field(
        default_factory=list,
        description="Models that take turns on one GPU (see engine.swap); a model is in at "
        "most one group, and only in-process engines swap.",
    )
    log_format: LogFormat = Field(
        default="text",
        description="'text' for people, 'json' (one object a line) for log shippers.",
    )

    _split_tokens = field_validator("api_tokens", "account_ids", mode="before")(_split_commas)

    @field_validator("models")
    @classmethod
    def _unique_names(cls, models: list[ModelSettings]) -> list[ModelSettings]:
        names = [model.name for model in models]
        duplicates = sorted({name for name in names if names.count(name) > 1})
        if duplicates:
            raise ValueError(f"models listed twice: {', '.join(duplicates)}")
        return models

    @model_validator(mode="after")
    def _swap_groups_fit(self) -> "Settings":
        local = {model.name for model in self.models if model.engine is not None}
        remote = {model.name for model in self.models if model.remote is not None}
        seen: dict[str, str] = {}
        for group in self.swap_groups:
            for name in group.models:
                if name in remote:
                    raise ValueError(
                        f"swap group '{group.name}': {name} has a remote engine; only "
                        "in-process engines swap"
                    )
                if name not in local:
                    raise ValueError(f"swap group '{group.name}': {name} is not a served model")
                if name in seen:
                    raise ValueError(
                        f"{name} is in two swap groups: '{seen[name]}' and '{group.name}'"
                    )
                seen[name] = group.name
        return self

    def swap_group_of(self, name: str) -> SwapGroupConfig | None:
        return next((group for group in self.swap_groups if name in group.models), None)

    @property
    def loopback_only(self) -> bool:
        if self.host == "localhost":
            return True
        try:
            return ipaddress.ip_address(self.host).is_loopback
        except ValueError:
            return False

    def resolved_cache_dir(self) -> Path:
        return self.cache_dir.expanduser()

    def resolved_adapters_dir(self) -> Path:
        if self.adapters_dir is None:
            return self.resolved_cache_dir() / "adapters"
        return self.adapters_dir.expanduser()


class EnvOverrides(BaseSettings):
    """Environment variables that override the YAML profile (prefix WORKERS_AI_LOCAL_)."""

    model_config = SettingsConfigDict(env_prefix="WORKERS_AI_LOCAL_", extra="ignore")

    host: str | None = None
    port: int | None = None
    api_tokens: Annotated[list[str] | None, NoDecode] = None
    account_ids: Annotated[list[str] | None, NoDecode] = None
    request_timeout_s: float | None = None
    cache_dir: Path | None = None
    adapters_dir: Path | None = None
    max_finetune_file_bytes: int | None = None
    max_request_bytes: int | None = None
    drain_timeout_s: float | None = None
    log_format: LogFormat | None = None

    _split = field_validator("api_tokens", "account_ids", mode="before")(_split_commas)


def load_settings(config_path: Path, **cli_overrides: Any) -> Settings:
    """Read a YAML profile, apply environment then CLI overrides, validate.

    Raises ConfigError with a message naming the file and the offending setting.
    """
    try:
        data = yaml.safe_load(config_path.read_text(encoding="utf-8")) or {}
    except OSError as error:
        raise ConfigError(f"cannot read config {config_path}: {error.strerror}") from None
    except yaml.YAMLError as error:
        raise ConfigError(f"{config_path} is not valid YAML: {error}") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{config_path} must hold a mapping of settings")
    try:
        env = EnvOverrides().model_dump(exclude_none=True)
        cli = {key: value for key, value in cli_overrides.items() if value is not None}
        return Settings.model_validate({**data, **env, **cli})
    except ValidationError as error:
        raise ConfigError(_describe(config_path, error)) from None


def setting_path(loc: tuple[int | str, ...]) -> str:
    """A setting's path as users write it: `models[1].engine.max_model_len`."""
    return "".join(f"[{part}]" if isinstance(part, int) else f".{part}" for part in loc).lstrip(".")


def _describe(config_path: Path, error: ValidationError) -> str:
    lines = [f"invalid settings in {config_path}:"]
    for item in error.errors():
        where = setting_path(item["loc"]) or "(top level)"
        lines.append(f"  {where}: {item['msg']}")
    return "\n".join(lines)

"""Workers AI errors: one hierarchy, raised (never returned), rendered once into the envelope.

    WorkersAIError                     status  code
    ├── BadInput                        400    5006  schema violations, template failures
    │   ├── NotSupportedYet             400    5006  a parameter this server does not serve yet
    │   └── InvalidFinetune             400    5006  LoRA adapter unsafe, malformed or unfit
    ├── JsonModeNotMet                  400    5006  output ended before the JSON was complete
    ├── MissingBody                     400    3003  empty request body
    ├── FinetuneMissingFiles            400    3039  LoRA adapter folder lacks a required file
    ├── NoSuchModel                     400    5007
    ├── AuthenticationError             401   10000
    ├── NoRoute                         404    7000  unknown path
    ├── CouldNotRoute                   404    7003  account id not served here
    ├── FinetuneNotFound                404    3037  no LoRA adapter of that name or id
    ├── MethodNotAllowed                405    7001
    ├── LoraNotSupported                405    5005  `lora` on a model served without LoRA
    ├── RequestTimeout                  408    3007
    ├── FinetuneExists                  409    3045  a finetune of that name exists already
    ├── FinetuneAssetExists             409    3046  finetune assets cannot be replaced
    ├── ContextWindowExceeded           413    5021
    ├── RequestTooLarge                 413    3006  a body or an upload over the size limit
    ├── CapacityExceeded                429    3040  the model's queue is full (Retry-After)
    ├── ClientDisconnected              499    3008  the client left; nobody reads the answer
    ├── EngineUnavailable               503    3040  the model's engine has stopped
    ├── ShuttingDown                    503    3040  the server is draining (Retry-After)
    └── InternalError                   500    3043  never echoes internal exception text

Envelope: {"result": null, "success": false, "errors": [{"code", "message"}], "messages": []}.
"""

from typing import Any, ClassVar


class WorkersAIError(Exception):
    status: ClassVar[int] = 500
    code: ClassVar[int] = 3043
    default_message: ClassVar[str] = "Internal server error"

    def __init__(self, message: str | None = None) -> None:
        self.message = message or self.default_message
        super().__init__(self.message)

    def envelope(self) -> dict[str, Any]:
        return error_envelope(self.code, self.message)

    def headers(self) -> dict[str, str]:
        """HTTP headers the answer carries besides the envelope."""
        return {}


class BadInput(WorkersAIError):
    status = 400
    code = 5006

    def __init__(self, detail: str) -> None:
        super().__init__(f"AiError: Bad input: Error: {detail}")


class NotSupportedYet(BadInput):
    def __init__(self, field: str) -> None:
        super().__init__(f"'{field}' is not supported by this server yet")


class InvalidFinetune(BadInput):
    def __init__(self, name: str, reason: str) -> None:
        super().__init__(f"Finetune {name} cannot be used: {reason}")


class JsonModeNotMet(WorkersAIError):
    status = 400
    code = 5006

    def __init__(self, detail: str) -> None:
        super().__init__(f"AiError: JSON Mode couldn't be met: {detail}")


class MissingBody(WorkersAIError):
    status = 400
    code = 3003
    default_message = "Request is missing headers or body: body"


class FinetuneMissingFiles(WorkersAIError):
    status = 400
    code = 3039

    def __init__(self, name: str, missing: list[str]) -> None:
        super().__init__(
            "Finetune is missing required files (adapter_model.safetensors and "
            f"adapter_config.json): {name} has no {' and no '.join(missing)}"
        )


class NoSuchModel(WorkersAIError):
    status = 400
    code = 5007

    def __init__(self, model: str) -> None:
        super().__init__(f"No such model {model} or task")


class AuthenticationError(WorkersAIError):
    status = 401
    code = 10000
    default_message = "Authentication error"


class NoRoute(WorkersAIError):
    status = 404
    code = 7000
    default_message = "No route for that URI"


class CouldNotRoute(WorkersAIError):
    status = 404
    code = 7003

    def __init__(self, path: str) -> None:
        super().__init__(f"Could not route to {path}, perhaps your object identifier is invalid?")


class FinetuneNotFound(WorkersAIError):
    # Workers AI answers an unknown finetune with code 3037 (cloudflare-docs#14757); 404 here.
    status = 404
    code = 3037

    def __init__(self, name: str) -> None:
        super().__init__(f"AiError: Finetune {name} not found")


class MethodNotAllowed(WorkersAIError):
    status = 405
    code = 7001

    def __init__(self, method: str) -> None:
        super().__init__(f"{method} not supported for requested URI.")


class LoraNotSupported(WorkersAIError):
    status = 405
    code = 5005

    def __init__(self, model: str) -> None:
        super().__init__(f"The model {model} does not support LoRa inference")


class RequestTimeout(WorkersAIError):
    status = 408
    code = 3007
    default_message = "Request timeout"


class FinetuneExists(WorkersAIError):
    # 409 and both codes are this server's: Workers AI's answers are not documented.
    status = 409
    code = 3045

    def __init__(self, name: str, detail: str) -> None:
        super().__init__(f"Finetune {name} already exists: {detail}")


class FinetuneAssetExists(WorkersAIError):
    status = 409
    code = 3046

    def __init__(self, name: str, file_name: str) -> None:
        super().__init__(
            f"Finetune {name} already has {file_name}: assets cannot be replaced "
            "(create a new finetune instead)"
        )


class ContextWindowExceeded(WorkersAIError):
    status = 413
    code = 5021

    def __init__(self, estimated: int, window: int) -> None:
        super().__init__(
            f"The estimated number of input and maximum output tokens ({estimated}) "
            f"exceeded this model context window limit ({window})."
        )


class RequestTooLarge(WorkersAIError):
    status = 413
    code = 3006

    def __init__(self, detail: str) -> None:
        super().__init__(f"Request is too large: {detail}")


class ClientDisconnected(WorkersAIError):
    """The client closed the connection; nobody reads this response."""

    status = 499
    code = 3008
    default_message = "Request was aborted"


class CapacityExceeded(WorkersAIError):
    """The model's engine has no room: its waiting queue is full, or the request asked not to
    wait (`options.rejectIfBusy`) and every running slot is taken."""

    status = 429
    code = 3040
    default_message = "Capacity temporarily exceeded, please try again."
    retry_after_s = 1

    def headers(self) -> dict[str, str]:
        return {"Retry-After": str(self.retry_after_s)}


class EngineUnavailable(WorkersAIError):
    status = 503
    code = 3040
    default_message = "The model is not available right now, please try again."


class ShuttingDown(WorkersAIError):
    """The server is draining before it stops: new requests are refused, and requests still
    running when the grace period ends are ended with this error (in-band for streams).

    3040 is Workers AI's code for "no capacity here, try again" (its "Out of capacity" error),
    which this server answers for every retryable refusal; 503 because this instance, not the
    client's rate, is the reason. Retry-After: a retry lands on another instance behind a load
    balancer, or on this one once restarted.
    """

    status = 503
    code = 3040
    default_message = "The server is shutting down, please try again."
    retry_after_s = 5

    def headers(self) -> dict[str, str]:
        return {"Retry-After": str(self.retry_after_s)}


class InternalError(WorkersAIError):
    status = 500
    code = 3043
    default_message = "Internal server error"


def error_envelope(code: int, message: str) -> dict[str, Any]:
    return {
        "result": None,
        "success": False,
        "errors": [{"code": code, "message": message}],
        "messages": [],
    }


def success_envelope(result: Any) -> dict[str, Any]:
    return {"result": result, "success": True, "errors": [], "messages": []}

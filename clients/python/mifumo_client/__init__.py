"""Typed Python client for the Mifumo SMS Integration API.

```python
from mifumo_client import Mifumo

with Mifumo() as client:  # MIFUMO_API_KEY and MIFUMO_URL from the environment
    sent = client.sms.send("Habari!", ["0712345678"])
    print(client.sms.wait(sent.message_id).status)
```
"""

from mifumo_client import webhooks
from mifumo_client._client import AsyncMifumo, Mifumo
from mifumo_client._version import __version__
from mifumo_client.errors import (
    BadRequestError,
    ConfigurationError,
    ConflictError,
    InsufficientBalanceError,
    InternalServerError,
    InvalidCredentialsError,
    InvalidPhoneError,
    InvalidScheduleTimeError,
    InvalidSenderIdError,
    MessageTooLongError,
    MethodNotAllowedError,
    MifumoConnectionError,
    MifumoError,
    MifumoException,
    MifumoTimeoutError,
    NotFoundError,
    OptedOutError,
    PayloadTooLargeError,
    PermissionDeniedError,
    RateLimitError,
    ServiceUnavailableError,
    TooManyRecipientsError,
    UnexpectedResponseError,
    UnsupportedDestinationError,
    UnsupportedMediaTypeError,
    ValidationError,
    WaitTimeoutError,
    WebhookSignatureError,
)
from mifumo_client.pagination import AsyncPager, SyncPager

__all__ = [
    "AsyncMifumo",
    "AsyncPager",
    "BadRequestError",
    "ConfigurationError",
    "ConflictError",
    "InsufficientBalanceError",
    "InternalServerError",
    "InvalidCredentialsError",
    "InvalidPhoneError",
    "InvalidScheduleTimeError",
    "InvalidSenderIdError",
    "MessageTooLongError",
    "MethodNotAllowedError",
    "Mifumo",
    "MifumoConnectionError",
    "MifumoError",
    "MifumoException",
    "MifumoTimeoutError",
    "NotFoundError",
    "OptedOutError",
    "PayloadTooLargeError",
    "PermissionDeniedError",
    "RateLimitError",
    "ServiceUnavailableError",
    "SyncPager",
    "TooManyRecipientsError",
    "UnexpectedResponseError",
    "UnsupportedDestinationError",
    "UnsupportedMediaTypeError",
    "ValidationError",
    "WaitTimeoutError",
    "WebhookSignatureError",
    "__version__",
    "webhooks",
]

"""API keys: the identity every file and batch belongs to."""

from __future__ import annotations

import base64
import hashlib
import logging
import secrets
import time

from django.db import IntegrityError, models, transaction
from django.utils import timezone

KEY_PREFIX = "sk-bs-"
CONSOLE_KEY_NAME = "console"


def hash_key(raw_key: str) -> str:
    """Keys are 256-bit random strings, so one SHA-256 is enough to keep them safe at rest."""
    return hashlib.sha256(raw_key.encode()).hexdigest()


# Keys recently found by ``ApiKey.find``: hash -> (when, key). Bounded; per process.
_recent: dict[str, tuple[float, ApiKey]] = {}
MAX_REMEMBERED_KEYS = 10_000


def new_webhook_secret() -> str:
    """A Standard Webhooks signing secret: ``whsec_`` + base64 of 24 random bytes."""
    return "whsec_" + base64.b64encode(secrets.token_bytes(24)).decode()


class ApiKeyQuerySet(models.QuerySet):
    def usable(self) -> ApiKeyQuerySet:
        now = timezone.now()
        return self.filter(revoked_at__isnull=True).filter(
            models.Q(expires_at__isnull=True) | models.Q(expires_at__gt=now)
        )


class ApiKey(models.Model):
    """A client credential. Only its hash is stored; the raw key is shown once at creation."""

    name = models.CharField(max_length=100)
    prefix = models.CharField(max_length=16, help_text="First characters, to recognise a key.")
    hashed_key = models.CharField(max_length=64, unique=True, editable=False)
    created_at = models.DateTimeField(default=timezone.now)
    expires_at = models.DateTimeField(null=True, blank=True)
    revoked_at = models.DateTimeField(null=True, blank=True)
    last_used_at = models.DateTimeField(null=True, blank=True, editable=False)
    webhook_url = models.URLField(
        max_length=500, blank=True, help_text="Default webhook URL for this key's batches."
    )
    # Kept in clear: signing needs it. Shown to operators in the admin, who hand it to the client.
    webhook_secret = models.CharField(max_length=64, default=new_webhook_secret, editable=False)
    internal = models.BooleanField(
        default=False,
        editable=False,
        help_text="Owns work operators start from the console (benchmarks, model tests, "
        "submitted batches); its raw value was never kept, so no client can use it.",
    )

    objects = ApiKeyQuerySet.as_manager()

    class Meta:
        verbose_name = "API key"
        ordering = ["-created_at"]
        constraints = [
            models.UniqueConstraint(
                fields=["name"], condition=models.Q(internal=True), name="uniq_internal_key_name"
            )
        ]

    def __str__(self) -> str:
        return f"{self.name} ({self.prefix}…)"

    def save(self, *args, **kwargs) -> None:
        super().save(*args, **kwargs)
        ApiKey.forget_found()

    @classmethod
    def issue(cls, name: str, expires_at=None, internal: bool = False) -> tuple[ApiKey, str]:
        """Create a key and return it with its raw value, which is not stored anywhere."""
        raw = KEY_PREFIX + secrets.token_urlsafe(32)
        key = cls.objects.create(
            name=name,
            prefix=raw[:12],
            hashed_key=hash_key(raw),
            expires_at=expires_at,
            internal=internal,
        )
        return key, raw

    @classmethod
    def console_key(cls) -> ApiKey:
        """The internal key that owns work started from the console, created on first use.

        Such batches go through the same services, queue and worker as any client's, and no
        client key ever lists them.
        """
        key = cls.objects.filter(internal=True, name=CONSOLE_KEY_NAME).first()
        if key is not None:
            return key
        try:
            with transaction.atomic():
                key, _ = cls.issue(CONSOLE_KEY_NAME, internal=True)  # raw value dropped
        except IntegrityError:  # another process created it first
            key = cls.objects.get(internal=True, name=CONSOLE_KEY_NAME)
        return key

    @classmethod
    def find(cls, raw_key: str, max_age: float = 0) -> ApiKey | None:
        """The usable key ``raw_key`` is, or None.

        ``max_age`` > 0: a key found within that many seconds is answered from this process's
        memory, without a query. Revoking in this process takes effect at once; revoking
        elsewhere (another web process, the admin on another host) within ``max_age``.
        """
        digest = hash_key(raw_key)
        if max_age > 0:
            found_at, key = _recent.get(digest, (0.0, None))
            if key is not None and time.monotonic() - found_at < max_age and key.is_usable:
                return key
        key = cls.objects.usable().filter(hashed_key=digest).first()
        if key is None:
            _recent.pop(digest, None)
        elif max_age > 0:
            if len(_recent) >= MAX_REMEMBERED_KEYS:
                _recent.clear()
            _recent[digest] = (time.monotonic(), key)
        return key

    @staticmethod
    def forget_found() -> None:
        """Drop what ``find`` remembers, after keys changed in this process."""
        _recent.clear()

    def rotate_webhook_secret(self) -> str:
        """Replace the webhook signing secret; later attempts and replays sign with the new one."""
        self.webhook_secret = new_webhook_secret()
        ApiKey.objects.filter(pk=self.pk).update(webhook_secret=self.webhook_secret)
        ApiKey.forget_found()
        return self.webhook_secret

    def revoke(self) -> None:
        ApiKey.objects.filter(pk=self.pk, revoked_at__isnull=True).update(revoked_at=timezone.now())
        ApiKey.forget_found()

    # DRF treats request.user as a user; a found key is an authenticated client.
    is_authenticated = True
    is_anonymous = False

    @property
    def is_usable(self) -> bool:
        expired = self.expires_at is not None and self.expires_at <= timezone.now()
        return self.revoked_at is None and not expired


class RuntimeSetting(models.Model):
    """A setting changed by an operator while the server runs; it wins over the environment.

    Only the names of ``batchserver.live.EDITABLE`` are stored here; every process reads them
    through ``batchserver.live.get`` (cached for ``LIVE_SETTINGS_SECONDS``).
    """

    name = models.CharField(max_length=100, primary_key=True)
    value = models.JSONField()
    updated_at = models.DateTimeField(auto_now=True)
    updated_by = models.CharField(max_length=150, blank=True)

    class Meta:
        verbose_name = "runtime setting"

    def __str__(self) -> str:
        return f"{self.name} = {self.value!r}"


class AuditEntryQuerySet(models.QuerySet):
    def about(self, target: str) -> AuditEntryQuerySet:
        return self.filter(target=target)


class AuditEntry(models.Model):
    """One operator action: who did what to which object, when, and how it ended."""

    at = models.DateTimeField(default=timezone.now, db_index=True)
    actor = models.CharField(max_length=150, help_text="The staff user (or 'system').")
    action = models.CharField(max_length=50)
    target = models.CharField(max_length=200, blank=True, db_index=True)
    detail = models.TextField(blank=True)
    ok = models.BooleanField(default=True)

    objects = AuditEntryQuerySet.as_manager()

    class Meta:
        verbose_name = "audit entry"
        verbose_name_plural = "audit trail"
        ordering = ["-at", "-id"]

    def __str__(self) -> str:
        return f"{self.at:%Y-%m-%d %H:%M:%S} {self.actor} {self.action} {self.target}"


class LogLineQuerySet(models.QuerySet):
    def matching(
        self,
        *,
        level: str = "",
        process: str = "",
        correlation_id: str = "",
        text: str = "",
    ) -> LogLineQuerySet:
        """Lines at ``level`` or above, of a process kind, a correlation id, containing text."""
        found = self
        if level:
            found = found.filter(levelno__gte=logging.getLevelName(level.upper()))
        if process:
            found = found.filter(process=process)
        if correlation_id:
            found = found.filter(correlation_id=correlation_id)
        if text:
            found = found.filter(message__icontains=text)
        return found


class LogLine(models.Model):
    """One recent log record of a web, worker or engine-host process (a capped store).

    Written in bulk by ``batchserver.logstore.StoreHandler``; the oldest rows beyond
    ``LOG_STORE_MAX_LINES`` are deleted as new ones arrive, so the table cannot fill the disk.
    """

    at = models.DateTimeField(db_index=True)
    levelno = models.PositiveSmallIntegerField()
    level = models.CharField(max_length=10)
    logger = models.CharField(max_length=200)
    process = models.CharField(max_length=20, help_text="web, worker, engine or command")
    pid = models.IntegerField()
    correlation_id = models.CharField(max_length=64, blank=True, db_index=True)
    message = models.TextField()

    objects = LogLineQuerySet.as_manager()

    class Meta:
        ordering = ["-id"]

    def __str__(self) -> str:
        return f"{self.at:%H:%M:%S} {self.level} {self.logger}: {self.message[:80]}"

"""Persistent records: shops, tokens, webhook deliveries, the order->QBO ledger, mappings, staff."""

from __future__ import annotations

import json
from datetime import datetime, timezone
from decimal import Decimal

from peewee import (
    BlobField,
    BooleanField,
    CharField,
    DateField,
    DateTimeField,
    DecimalField,
    ForeignKeyField,
    IntegerField,
    Model,
    TextField,
)

from . import crypto
from .db import database
from .statuses import ConnectionStatus, DeliveryStatus, RecordStatus, RunStatus, ShopStatus


def utcnow() -> datetime:
    """Naive UTC now: peewee stores naive datetimes identically on SQLite and PostgreSQL."""
    return datetime.now(timezone.utc).replace(tzinfo=None)


class EncryptedField(TextField):
    """A text column stored as Fernet ciphertext; reads return plaintext."""

    def db_value(self, value):
        return None if value is None else crypto.encrypt(value)

    def python_value(self, value):
        return None if value is None else crypto.decrypt(value)


class JSONField(TextField):
    """JSON stored as text so SQLite and PostgreSQL behave the same."""

    def db_value(self, value):
        return None if value is None else json.dumps(value, default=str, sort_keys=True)

    def python_value(self, value):
        return None if value is None else json.loads(value)


class MoneyField(DecimalField):
    """Two-decimal money; always a Decimal in Python, never a float."""

    def __init__(self, *args, **kwargs):
        kwargs.setdefault("max_digits", 16)
        kwargs.setdefault("decimal_places", 2)
        kwargs.setdefault("auto_round", True)
        kwargs.setdefault("null", True)
        super().__init__(*args, **kwargs)

    def python_value(self, value):
        if value is None:
            return None
        return Decimal(str(value)).quantize(Decimal("0.01"))


class BaseModel(Model):
    class Meta:
        database = database


class Shop(BaseModel):
    """An installed (or once-installed) Shopify store and its Shopify tokens."""

    domain = CharField(unique=True, max_length=255)
    name = CharField(null=True)
    email = CharField(null=True)
    timezone = CharField(default="UTC")
    currency = CharField(default="USD", max_length=3)
    country = CharField(null=True, max_length=2)
    scopes = TextField(null=True)
    access_token = EncryptedField(null=True)
    access_token_expires_at = DateTimeField(null=True)
    refresh_token = EncryptedField(null=True)
    refresh_token_expires_at = DateTimeField(null=True)
    # Bumped on every stored token change; lets a refresher detect it lost a race.
    token_version = IntegerField(default=0)
    status = CharField(default=ShopStatus.ACTIVE, index=True)
    # Why Shopify access stopped (refresh rejected, token revoked); cleared by a (re)install.
    auth_error = TextField(null=True)
    # The latest token grant (install, reinstall, re-grant): a late app/uninstalled from before it is checked.
    installed_at = DateTimeField(default=utcnow)
    uninstalled_at = DateTimeField(null=True)
    redacted_at = DateTimeField(null=True)
    created_at = DateTimeField(default=utcnow)
    updated_at = DateTimeField(default=utcnow)

    @property
    def is_active(self) -> bool:
        return self.status == ShopStatus.ACTIVE and bool(self.access_token)


class ShopSettings(BaseModel):
    """Per-shop accounting choices; values is a JSON object validated by the web layer."""

    shop = ForeignKeyField(Shop, backref="settings_rows", unique=True, on_delete="CASCADE")
    values = JSONField(default=dict)
    updated_at = DateTimeField(default=utcnow)


class QboConnection(BaseModel):
    """The shop's link to one QuickBooks company (realm) and its Intuit tokens."""

    shop = ForeignKeyField(Shop, backref="qbo_rows", unique=True, on_delete="CASCADE")
    realm_id = CharField(null=True, index=True)
    company_name = CharField(null=True)
    company_country = CharField(null=True, max_length=2)
    home_currency = CharField(null=True, max_length=3)
    multicurrency = BooleanField(default=False)
    # Non-US companies: their TaxCodes/TaxRates as JSON (translate.tax_codes.TaxSetup.to_values).
    tax_setup = TextField(null=True)
    tax_setup_read_at = DateTimeField(null=True)
    access_token = EncryptedField(null=True)
    access_token_expires_at = DateTimeField(null=True)
    refresh_token = EncryptedField(null=True)
    refresh_token_expires_at = DateTimeField(null=True)
    refresh_token_hard_expires_at = DateTimeField(null=True)
    token_version = IntegerField(default=0)
    status = CharField(default=ConnectionStatus.NOT_CONNECTED, index=True)
    status_reason = TextField(null=True)
    connected_at = DateTimeField(null=True)
    last_refresh_at = DateTimeField(null=True)
    last_success_at = DateTimeField(null=True)
    updated_at = DateTimeField(default=utcnow)


class OAuthState(BaseModel):
    """A single-use, expiring OAuth state nonce bound to one shop."""

    nonce = CharField(unique=True, max_length=128)
    shop_domain = CharField(max_length=255)
    purpose = CharField(max_length=16)  # shopify | qbo
    created_at = DateTimeField(default=utcnow)
    expires_at = DateTimeField()
    used_at = DateTimeField(null=True)


class WebhookDelivery(BaseModel):
    """One row per Shopify webhook delivery (unique X-Shopify-Webhook-Id), and what became of it."""

    webhook_id = CharField(unique=True, max_length=255)
    event_id = CharField(null=True, max_length=255, index=True)
    topic = CharField(max_length=64)  # indexed with id below (filters and keyset pages)
    shop_domain = CharField(max_length=255)
    shop = ForeignKeyField(Shop, null=True, backref="deliveries", on_delete="SET NULL")
    api_version = CharField(null=True, max_length=16)
    triggered_at = CharField(null=True, max_length=64)
    headers = JSONField(default=dict)
    body = TextField()
    # The exact bytes, kept only when `body` could not hold them (invalid UTF-8, a NUL byte): `body`
    # then holds a readable copy with those bytes replaced.
    raw_body = BlobField(null=True)
    status = CharField(default=DeliveryStatus.RECEIVED, max_length=24)
    attempts = IntegerField(default=0)
    error = TextField(null=True)
    error_detail = JSONField(null=True)
    resource_id = CharField(null=True, max_length=64, index=True)  # order / refund / customer id
    order_id = CharField(null=True, max_length=64, index=True)
    order_name = CharField(null=True, max_length=64, index=True)
    received_at = DateTimeField(default=utcnow)
    enqueued_at = DateTimeField(null=True)
    started_at = DateTimeField(null=True)
    finished_at = DateTimeField(null=True)
    lease_until = DateTimeField(null=True)
    next_attempt_at = DateTimeField(null=True)
    intake_ms = IntegerField(null=True)

    class Meta:
        # The support log pages by id (keyset) under each filter: (filter column, id) indexes.
        indexes = (
            (("status", "id"), False),
            (("shop_domain", "id"), False),
            (("topic", "id"), False),
            (("received_at",), False),
        )


class SyncRecord(BaseModel):
    """The order->QBO ledger: one row per source document (order, refund, payment, void)."""

    shop = ForeignKeyField(Shop, backref="sync_records", on_delete="CASCADE")
    # order:<id> | refund:<id> | payment:<order id>:<transaction id> | cancel:<order id>
    # | apply:<refund id> (a credit memo applied to its invoice)
    source_key = CharField(max_length=128)
    kind = CharField(max_length=16, default="order")
    order_id = CharField(max_length=64, index=True)
    order_name = CharField(null=True, max_length=64)
    status = CharField(default=RecordStatus.PENDING, max_length=24)
    document_type = CharField(null=True, max_length=24)  # SalesReceipt | Invoice | RefundReceipt | ...
    request_id = CharField(null=True, max_length=50)
    # Bumped when QBO definitively rejects the document (nothing created): the fixed retry needs
    # a new requestid, because QBO replays the original answer for a repeated one.
    request_generation = IntegerField(default=0)
    qbo_id = CharField(null=True, max_length=64)
    qbo_doc_number = CharField(null=True, max_length=32)
    qbo_sync_token = CharField(null=True, max_length=16)
    currency = CharField(null=True, max_length=3)
    shopify_total = MoneyField()
    qbo_total = MoneyField()
    tax_total = MoneyField()
    shipping_total = MoneyField()
    discount_total = MoneyField()
    reason = TextField(null=True)
    error_code = CharField(null=True, max_length=32)
    error_element = CharField(null=True, max_length=255)
    intuit_tid = CharField(null=True, max_length=128)
    attempts = IntegerField(default=0)
    delivery = ForeignKeyField(WebhookDelivery, null=True, backref="sync_records", on_delete="SET NULL")
    order_date = DateField(null=True)
    posted_at = DateTimeField(null=True)
    created_at = DateTimeField(default=utcnow)
    updated_at = DateTimeField(default=utcnow)
    # An order's document: the refunds that moved no money which it nets out (ids, comma separated;
    # "" none), written with the document so every refund worker reads one answer. NULL: a row posted
    # before this column, whose document netted every refund its delivery body listed.
    reflected_refunds = TextField(null=True)

    class Meta:
        indexes = (
            (("shop", "source_key"), True),
            (("shop", "status", "updated_at"), False),
            (("shop", "updated_at"), False),
        )


class ProcessingAttempt(BaseModel):
    """One try at processing a delivery/ledger row: the QBO exchange (tokens never stored)."""

    delivery = ForeignKeyField(WebhookDelivery, null=True, backref="processing_attempts", on_delete="CASCADE")
    sync_record = ForeignKeyField(SyncRecord, null=True, backref="processing_attempts", on_delete="CASCADE")
    started_at = DateTimeField(default=utcnow)
    finished_at = DateTimeField(null=True)
    outcome = CharField(null=True, max_length=24)
    request = JSONField(null=True)
    response = JSONField(null=True)
    error_message = TextField(null=True)
    error_code = CharField(null=True, max_length=32)
    error_element = CharField(null=True, max_length=255)
    intuit_tid = CharField(null=True, max_length=128)
    duration_ms = IntegerField(null=True)


class CustomerMap(BaseModel):
    """Cached Shopify identity -> QBO customer; key is a hash, so it holds no personal data."""

    shop = ForeignKeyField(Shop, backref="customer_maps", on_delete="CASCADE")
    key = CharField(max_length=128)
    shopify_customer_id = CharField(null=True, max_length=64, index=True)
    qbo_customer_id = CharField(max_length=64)
    display_name = CharField(null=True)
    created_at = DateTimeField(default=utcnow)

    class Meta:
        indexes = ((("shop", "key"), True),)


class ItemMap(BaseModel):
    """Cached SKU/title -> QBO item."""

    shop = ForeignKeyField(Shop, backref="item_maps", on_delete="CASCADE")
    key = CharField(max_length=255)
    qbo_item_id = CharField(max_length=64)
    name = CharField(null=True)
    created_at = DateTimeField(default=utcnow)

    class Meta:
        indexes = ((("shop", "key"), True),)


class ComplianceRequest(BaseModel):
    """A GDPR data request or redaction and what was exported/erased."""

    shop_domain = CharField(max_length=255, index=True)
    kind = CharField(max_length=32)  # customers/data_request | customers/redact | shop/redact
    customer_id = CharField(null=True, max_length=64)
    export = JSONField(null=True)
    summary = TextField(null=True)
    created_at = DateTimeField(default=utcnow)


class BackfillRun(BaseModel):
    """A resumable historical import: cursor and counts survive a crash."""

    shop = ForeignKeyField(Shop, backref="backfills", on_delete="CASCADE")
    since = DateField()
    until = DateField(null=True)
    cursor = TextField(null=True)
    status = CharField(default=RunStatus.RUNNING, max_length=16)
    seen = IntegerField(default=0)
    posted = IntegerField(default=0)
    failed = IntegerField(default=0)
    error = TextField(null=True)
    started_at = DateTimeField(default=utcnow)
    finished_at = DateTimeField(null=True)
    # Who runs it ("worker" for the queue, "cli:host:pid") and until when: a 'running' run whose lease
    # has passed lost its process (killed, crashed) and can be resumed or cancelled.
    owner = CharField(null=True, max_length=128)
    lease_until = DateTimeField(null=True)


class ReconciliationRun(BaseModel):
    """A comparison of Shopify, the ledger and QBO over a date range."""

    shop = ForeignKeyField(Shop, backref="reconciliations", on_delete="CASCADE")
    start_date = DateField()
    end_date = DateField()
    trigger = CharField(default="manual", max_length=16)  # manual | scheduled
    status = CharField(default=RunStatus.RUNNING, max_length=16)
    report = JSONField(null=True)
    healed = IntegerField(default=0)
    created_at = DateTimeField(default=utcnow)
    finished_at = DateTimeField(null=True)


class Payout(BaseModel):
    """A Shopify Payments payout as last read from Shopify, with its balance transactions; its Deposit is the
    ledger row payout:<payout_id>."""

    shop = ForeignKeyField(Shop, backref="payouts", on_delete="CASCADE")
    payout_id = CharField(max_length=64)
    issued_at = DateTimeField(null=True)
    payout_date = DateField(null=True)  # in the shop's timezone
    status = CharField(max_length=16)  # SCHEDULED | IN_TRANSIT | PAID | FAILED | CANCELED
    currency = CharField(null=True, max_length=3)
    net = MoneyField()  # signed: a withdrawal is negative
    fees = MoneyField()
    transactions = JSONField(null=True)  # balance transactions, read once the payout is paid
    wait_reason = TextField(null=True)  # why its Deposit is not posted yet
    waiting_since = DateTimeField(null=True)
    read_at = DateTimeField(default=utcnow)
    updated_at = DateTimeField(default=utcnow)

    class Meta:
        indexes = (
            (("shop", "payout_id"), True),
            (("shop", "payout_date"), False),
        )


class StaffUser(BaseModel):
    """A support staff account (not a merchant)."""

    email = CharField(unique=True)
    password_hash = TextField()
    role = CharField(default="viewer", max_length=16)  # viewer | operator
    failed_logins = IntegerField(default=0)
    locked_until = DateTimeField(null=True)
    last_login_at = DateTimeField(null=True)
    created_at = DateTimeField(default=utcnow)
    disabled_at = DateTimeField(null=True)  # a disabled account cannot sign in and has no live session


class StaffSession(BaseModel):
    """One signed-in support console session; the cookie carries its token, the row its hash."""

    staff = ForeignKeyField(StaffUser, backref="sessions", on_delete="CASCADE")
    token_hash = CharField(unique=True, max_length=64)
    created_at = DateTimeField(default=utcnow)
    expires_at = DateTimeField()
    revoked_at = DateTimeField(null=True)
    revoked_reason = CharField(null=True, max_length=64)
    ip = CharField(null=True, max_length=64)


class AuditLog(BaseModel):
    """What a staff member did, to what, and when."""

    staff = ForeignKeyField(StaffUser, null=True, backref="audit", on_delete="SET NULL")
    staff_email = CharField(null=True)
    action = CharField(max_length=64, index=True)
    target = CharField(null=True, max_length=255)
    detail = JSONField(null=True)
    ip = CharField(null=True, max_length=64)
    at = DateTimeField(default=utcnow, index=True)


class SchemaVersion(BaseModel):
    """Applied migration steps."""

    version = IntegerField(unique=True)
    applied_at = DateTimeField(default=utcnow)


ALL_MODELS = [
    Shop,
    ShopSettings,
    QboConnection,
    OAuthState,
    WebhookDelivery,
    SyncRecord,
    ProcessingAttempt,
    CustomerMap,
    ItemMap,
    ComplianceRequest,
    BackfillRun,
    ReconciliationRun,
    Payout,
    StaffUser,
    StaffSession,
    AuditLog,
    SchemaVersion,
]

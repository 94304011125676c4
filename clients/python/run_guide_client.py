"""Runs the integration guide's Python client, unedited, through a whole payment and a refund.

Reads the guide's configuration from the environment: LOOMI_PAY_BASE_URL, LOOMI_PAY_API_KEY,
APP_ID, REDIS_URL. Exits 0 when every step did what the guide promises, 1 with a message otherwise.

The guide's client is used as a main app would use it; this file only adds what the guide leaves
to the reader: paying at the (sandbox) cashier page and reacting to the result message. The
client's listen_payment_results is an endless loop that swallows exceptions, so it runs in a
daemon thread, the overridden handler signals the main thread, and the process ends with
os._exit once the group it created is removed.
"""
import os
import threading
import time
import uuid

import redis
import requests

from loomipay_client import LoomipayClient

DEADLINE_SECONDS = 60  # the whole run, whatever hangs (the guide's requests carry no timeout)
STEP_TIMEOUT = 30  # waiting for the cashier URL, and for the result message
AMOUNT = 10000
REFUND_AMOUNT = 3000
STREAM = "payment_results"

created_groups = []  # (redis_url, group): removed on the way out, whatever the outcome


def remove_groups() -> None:
    for redis_url, group in created_groups:
        try:
            redis.from_url(redis_url, socket_timeout=5).xgroup_destroy(STREAM, group)
        except redis.exceptions.RedisError as exc:
            print(f"python guide client: could not remove consumer group {group}: {exc}", flush=True)


def fail(message: str) -> None:
    print(f"python guide client: FAIL: {message}", flush=True)
    remove_groups()
    os._exit(1)


class RecordingClient(LoomipayClient):
    """The guide's client, with handle_payment_result reporting one order's messages."""

    def __init__(self, *args, merchant_order_id: str, **kwargs):
        super().__init__(*args, **kwargs)
        self.merchant_order_id = merchant_order_id
        self.messages = []
        self.succeeded = threading.Event()
        self.done = threading.Event()

    def handle_payment_result(self, message_data):
        # The stream is shared: earlier runs and other apps' orders are there too.
        if message_data.get("merchant_order_id") != self.merchant_order_id:
            return
        self.messages.append(message_data)
        super().handle_payment_result(message_data)
        if (message_data.get("event_type") == "payment_status_changed"
                and message_data.get("new_status") == "succeeded"):
            self.succeeded.set()
            # Park the listener thread here so that it stops reading before its group is removed.
            self.done.wait()


def wait_for(what: str, timeout: float, probe):
    end = time.monotonic() + timeout
    while True:
        value = probe()
        if value:
            return value
        if time.monotonic() > end:
            fail(f"timed out after {timeout:.0f}s waiting for {what}")
        time.sleep(0.2)


def expect(what: str, got, want) -> None:
    if got != want:
        fail(f"{what}: got {got!r}, want {want!r}")


def main() -> None:
    env = {name: os.environ.get(name, "") for name in
           ("LOOMI_PAY_BASE_URL", "LOOMI_PAY_API_KEY", "APP_ID", "REDIS_URL")}
    missing = [name for name, value in env.items() if not value]
    if missing:
        fail(f"missing environment: {', '.join(missing)}")
    watchdog = threading.Timer(DEADLINE_SECONDS, fail, [f"whole run exceeded {DEADLINE_SECONDS}s"])
    watchdog.daemon = True
    watchdog.start()

    run_id = f"{int(time.time())}_{uuid.uuid4().hex[:8]}"
    merchant_order_id = f"GUIDE_PY_{run_id}"
    consumer_group = f"guide_py_{run_id}"  # a fresh group: no pending entries from earlier runs
    client = RecordingClient(env["LOOMI_PAY_BASE_URL"], env["LOOMI_PAY_API_KEY"], env["APP_ID"],
                             env["REDIS_URL"], merchant_order_id=merchant_order_id)

    order = client.create_payment_order(merchant_order_id=merchant_order_id, amount=AMOUNT,
                                        subject="VIP membership",
                                        extra_data={"user_id": "user_12345"})
    expect("created order status", order.get("status"), "pending")
    expect("created order merchant_order_id", order.get("merchant_order_id"), merchant_order_id)
    expect("created order amount", order.get("amount"), AMOUNT)
    print(f"python guide client: created order {order['id']} ({merchant_order_id})", flush=True)

    expect("read order id", client.get_payment_order(merchant_order_id).get("id"), order["id"])

    def checkout_ready():
        current = client.get_payment_order(merchant_order_id)
        if current.get("status") == "failed":
            fail(f"order failed before checkout: {current}")
        url = (current.get("extra_data") or {}).get("payment_url")
        return url if current.get("status") == "processing" and url else None
    payment_url = wait_for("status processing with extra_data.payment_url", STEP_TIMEOUT, checkout_ready)

    created_groups.append((env["REDIS_URL"], consumer_group))
    listener = threading.Thread(target=client.listen_payment_results,
                                kwargs={"consumer_group": consumer_group}, daemon=True)
    listener.start()

    paid = requests.post(payment_url, data={"action": "pay"}, headers={"Accept": "application/json"},
                         allow_redirects=False, timeout=10)
    if paid.status_code != 200:
        fail(f"paying at {payment_url}: HTTP {paid.status_code}: {paid.text[:200]}")

    if not client.succeeded.wait(STEP_TIMEOUT):
        fail(f"no payment_status_changed message with new_status succeeded for {merchant_order_id} "
             f"within {STEP_TIMEOUT}s via listen_payment_results (messages seen for it: {client.messages})")
    success = client.messages[-1]
    expect("message payment_order_id", success.get("payment_order_id"), order["id"])
    expect("message app_id", success.get("app_id"), env["APP_ID"])
    expect("message old_status", success.get("old_status"), "processing")
    expect("message amount", success.get("amount"), str(AMOUNT))
    expect("order status after payment", client.get_payment_order(merchant_order_id).get("status"),
           "succeeded")

    refund = client.create_refund_order(payment_order_id=order["id"], amount=REFUND_AMOUNT,
                                        reason="partial refund")
    expect("refund status", refund.get("status"), "pending")
    expect("refund payment_order_id", refund.get("payment_order_id"), order["id"])
    expect("refund app_id", refund.get("app_id"), env["APP_ID"])
    expect("refund amount", refund.get("amount"), REFUND_AMOUNT)
    expect("refund currency", refund.get("currency"), "CNY")
    expect("refund reason", refund.get("reason"), "partial refund")
    if not refund.get("id"):
        fail(f"refund has no id: {refund}")
    print(f"python guide client: paid, got the result message, refund {refund['id']} accepted", flush=True)

    remove_groups()
    print("python guide client: ok", flush=True)
    os._exit(0)


if __name__ == "__main__":
    try:
        main()
    except Exception as exc:  # the guide's client raises requests' HTTPError on any 4xx/5xx
        detail = getattr(getattr(exc, "response", None), "text", "")
        fail(f"{type(exc).__name__}: {exc} {detail[:300]}".strip())

"""The rules, without a server, a database or a network: milliseconds each."""

import pytest

from shop.domain import model


@pytest.mark.parametrize(
    ("sku", "qty", "cents"),
    [("KB-1", 1, 435), ("HD-4", 3, 345), ("PD-5", 7, 203), ("MS-2", 3, 5997), ("LT-6", 100, 12345600)],
)
def test_a_total_is_exact_integer_cents(sku, qty, cents):
    assert model.total_cents(sku, qty) == cents


@pytest.mark.parametrize("qty", [0, -1, 101])
def test_a_quantity_outside_one_to_a_hundred_is_refused(qty):
    with pytest.raises(model.InvalidQuantity):
        model.total_cents("KB-1", qty)


def test_an_unknown_sku_is_refused():
    with pytest.raises(model.UnknownSku):
        model.total_cents("ZZ-9", 1)


def test_every_attempt_of_one_order_uses_the_same_payment_key():
    order = model.Order(7, 1, "client-key", "KB-1", 1, 435, "pending")
    assert model.payment_key(order) == model.payment_key(order) == "order-7"
    assert model.Receipt(7, "a@b.c", 435).key == "receipt-7"


def test_the_fifth_failure_locks_an_account():
    assert not model.locked_out(model.LOCKOUT_ATTEMPTS - 1)
    assert model.locked_out(model.LOCKOUT_ATTEMPTS)

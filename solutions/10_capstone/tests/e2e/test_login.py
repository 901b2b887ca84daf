"""Logging in, and what an attacker guessing passwords gets."""


def test_five_wrong_passwords_lock_the_account_even_for_the_right_one(client, account):
    for n in range(5):
        wrong = client.post("/login", json={"email": account.email, "password": f"guess-{n}"})
        assert wrong.status_code == 401
    locked = client.post("/login", json={"email": account.email, "password": account.password})
    assert locked.status_code == 429
    assert int(locked.headers["Retry-After"]) > 0


def test_a_lockout_leaves_other_accounts_alone(client, account):
    for n in range(6):
        client.post("/login", json={"email": "someone-else@shop.test", "password": f"guess-{n}"})
    ok = client.post("/login", json={"email": account.email, "password": account.password})
    assert ok.status_code == 200

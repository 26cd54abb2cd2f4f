from tests.wsclient import proof


def test_login_operation_logout(ws, user):
    assert ws.login("alice", user.access_key)["success"]
    assert ws.authed("listTypes", "GET")["result"]["types"] == ["Users"]
    assert ws.authed("logout")["result"] == {"message": "successfull"}
    assert ws.authed("logout")["error"]["code"] == "AUTHENTICATION_REQUIRED"

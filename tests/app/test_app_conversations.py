"""The app's conversation routes over plain HTTP: two writers cannot lose messages, search,
rename, export, delete; and the page and its files at / ."""
from __future__ import annotations

import json

import httpx


def _new(url: str, title: str = "Plan a trip") -> dict:
    r = httpx.post(f"{url}/app/api/conversations", json={"title": title, "settings": {"model": "tiny:latest", "temperature": 0.2}})
    assert r.status_code == 201, r.text
    return r.json()


def test_two_tabs_writing_one_conversation_lose_nothing(app_server):
    conv = _new(app_server)
    path = f"{app_server}/app/api/conversations/{conv['id']}/messages"
    tab_a = httpx.post(path, json={"version": conv["version"], "messages": [{"role": "user", "content": "from A"}]})
    assert tab_a.status_code == 200
    stale = httpx.post(path, json={"version": conv["version"], "messages": [{"role": "user", "content": "from B"}]})
    assert stale.status_code == 409
    assert "reload" in stale.json()["error"]
    fresh = httpx.get(f"{app_server}/app/api/conversations/{conv['id']}").json()
    tab_b = httpx.post(path, json={"version": fresh["version"], "messages": [{"role": "user", "content": "from B"}]})
    assert [m["content"] for m in tab_b.json()["messages"]] == ["from A", "from B"]


def test_replace_from_an_index_edits_and_regenerates(app_server):
    conv = _new(app_server)
    path = f"{app_server}/app/api/conversations/{conv['id']}/messages"
    msgs = [{"role": "user", "content": "one"}, {"role": "assistant", "content": "two", "meta": {"tokens": 1}}]
    conv = httpx.post(path, json={"version": 0, "messages": msgs}).json()
    edited = httpx.post(path, json={"version": conv["version"], "start": 0, "messages": [{"role": "user", "content": "uno"}]}).json()
    assert [m["content"] for m in edited["messages"]] == ["uno"]
    bad = httpx.post(path, json={"version": edited["version"], "start": 5, "messages": []})
    assert bad.status_code == 400
    bad_role = httpx.post(path, json={"version": edited["version"], "messages": [{"role": "tool", "content": "x"}]})
    assert bad_role.status_code == 400


def test_search_rename_export_delete(app_server):
    conv = _new(app_server, "Recipes")
    cid = conv["id"]
    httpx.post(f"{app_server}/app/api/conversations/{cid}/messages",
               json={"version": 0, "messages": [{"role": "user", "content": "How long to boil an egg?"}]})
    found = httpx.get(f"{app_server}/app/api/conversations", params={"q": "boil"}).json()["conversations"]
    assert cid in [c["id"] for c in found]
    current = httpx.get(f"{app_server}/app/api/conversations/{cid}").json()
    renamed = httpx.patch(f"{app_server}/app/api/conversations/{cid}", json={"version": current["version"], "title": "Eggs"})
    assert renamed.json()["title"] == "Eggs"
    md = httpx.get(f"{app_server}/app/api/conversations/{cid}/export", params={"format": "md"})
    assert md.text.startswith("# Eggs") and "How long to boil an egg?" in md.text
    assert 'filename="Eggs.md"' in md.headers["content-disposition"]
    exported = json.loads(httpx.get(f"{app_server}/app/api/conversations/{cid}/export").text)
    assert exported["settings"]["temperature"] == 0.2 and exported["messages"][0]["role"] == "user"
    assert httpx.delete(f"{app_server}/app/api/conversations/{cid}").status_code == 204
    assert httpx.get(f"{app_server}/app/api/conversations/{cid}").status_code == 404


def test_root_serves_the_page_to_browsers_and_the_banner_to_clients(app_server):
    assert httpx.get(app_server + "/").text == "corral is running"
    page = httpx.get(app_server + "/", headers={"Accept": "text/html"})
    assert '<script type="module" src="/app/static/app.js">' in page.text
    assert httpx.get(app_server + "/app/static/app.js").headers["content-type"].startswith("text/javascript")
    assert httpx.get(app_server + "/app/static/..%2Fapp.py").status_code == 404
    assert httpx.get(app_server + "/app/static/nope.js").status_code == 404


def test_conversations_survive_a_server_restart(tmp_path):
    from corral.server.app import create_app
    from corral.server.store_source import StoreModelSource
    from server_harness import serve_in_thread

    url, stop = serve_in_thread(create_app([], source=StoreModelSource(tmp_path), store_home=tmp_path))
    try:
        conv = _new(url, "Kept")
        httpx.post(f"{url}/app/api/conversations/{conv['id']}/messages",
                   json={"version": 0, "messages": [{"role": "user", "content": "remember me"}]})
    finally:
        stop()
    url, stop = serve_in_thread(create_app([], source=StoreModelSource(tmp_path), store_home=tmp_path))
    try:
        again = httpx.get(f"{url}/app/api/conversations/{conv['id']}").json()
        assert again["title"] == "Kept" and again["messages"][0]["content"] == "remember me"
    finally:
        stop()

"""Definitions: the download holds a queue that exists, and uploading a file adds a queue.
Objects are named "ui-core-defs-*"."""

import json
import os
import tempfile

from conftest import wait_until

Q = "ui-core-defs-q"
NEW = "ui-core-defs-new"


def test_download_holds_a_queue_and_upload_adds_one(warren, page, wait_for, shot):
    assert warren.api("PUT", f"/api/queues/%2F/{Q}", {"durable": True})[0] in (201, 204)
    d = page("definitions")
    # The download lands in a folder of the test's own (the page's CSP keeps a script
    # from reading the blob: URL back, so read the file the browser saved).
    saved = tempfile.mkdtemp()
    d.execute_cdp_cmd("Browser.setDownloadBehavior", {"behavior": "allow", "downloadPath": saved})
    wait_for('[data-test="download-definitions"]').click()
    link = wait_for('[data-test="definitions-link"]')
    name = link.get_attribute("download")
    assert name.startswith("rabbit_") and name.endswith(".json"), name
    path = os.path.join(saved, name)
    wait_until(lambda: os.path.exists(path), 10, f"the download {path}")
    with open(path) as f:
        defs = json.load(f)
    assert any(q["name"] == Q for q in defs["queues"])
    shot("definitions")

    path = os.path.join(tempfile.mkdtemp(), "ui-core-defs.json")
    with open(path, "w") as f:
        json.dump({"queues": [{"name": NEW, "vhost": "/", "durable": True, "auto_delete": False,
                               "arguments": {"x-max-length": 5}}]}, f)
    d.find_element("css selector", '[data-test="definitions-file"]').send_keys(path)
    d.find_element("css selector", '[data-test="upload-definitions"]').click()
    assert "Imported" in wait_for('[data-test="upload-result"]', text="Imported").text
    status, q = warren.api("GET", f"/api/queues/%2F/{NEW}")
    assert status == 200 and q["arguments"] == {"x-max-length": 5}
    # A file that is not JSON is refused, and the page says why.
    with open(path, "w") as f:
        f.write("not json")
    d.find_element("css selector", '[data-test="definitions-file"]').send_keys(path)
    d.find_element("css selector", '[data-test="upload-definitions"]').click()
    wait_for('[data-test="upload-result"] .error', text="refused")
    for name in (Q, NEW):
        warren.api("DELETE", f"/api/queues/%2F/{name}")

"""Admin: add a user with a tag, a vhost, a permission for the user in it, a policy with a
typed definition; then delete them, all from the UI. Names are "ui-core-*"."""

from selenium.webdriver.support.ui import Select

from conftest import quote, wait_until

USER = "ui-core-user"
VHOST = "ui-core-vhost"
POLICY = "ui-core-policy"


def fill(d, test, text):
    el = d.find_element("css selector", f'[data-test="{test}"]')
    el.clear()
    el.send_keys(text)


def click(d, el):
    """A click that a toast in the corner cannot intercept."""
    d.execute_script("arguments[0].click()", el)


def submit(d, form):
    d.find_element("css selector", f'[data-test="{form}-submit"]').click()


def test_admin_adds_and_deletes_user_vhost_permission_policy(warren, page, wait_for, shot):
    d = page("admin/users")
    d.execute_script("window.confirm = () => true")
    fill(d, "user-name", USER)
    fill(d, "user-password", "ui-core-pw")
    fill(d, "user-tags", "monitoring")
    submit(d, "add-user")
    wait_for(f'[data-test="users-table"] tr[data-name="{USER}"]', timeout=15)
    status, u = warren.api("GET", f"/api/users/{USER}")
    assert status == 200 and u["tags"] == ["monitoring"]
    shot("admin-users")

    page("admin/vhosts")
    fill(d, "vhost-name", VHOST)
    submit(d, "add-vhost")
    wait_for(f'[data-test="vhosts-table"] tr[data-name="{VHOST}"]', timeout=15)
    shot("admin-vhosts")

    page(f"admin/users/{USER}")
    d.execute_script("window.confirm = () => true")
    wait_until(lambda: VHOST in d.find_element("css selector", '[data-test="permission-vhost"]').text)
    Select(d.find_element("css selector", '[data-test="permission-vhost"]')).select_by_value(VHOST)
    fill(d, "permission-write", "^ui-core")
    submit(d, "set-permission")
    wait_for('[data-test="permissions-table"] tr', text=VHOST, timeout=15)
    status, p = warren.api("GET", f"/api/permissions/{VHOST}/{USER}")
    assert status == 200 and p["write"] == "^ui-core" and p["read"] == ".*"
    shot("admin-user")

    page("admin/policies")
    d.execute_script("window.confirm = () => true")
    wait_until(lambda: VHOST in d.find_element("css selector", '[data-test="policy-vhost"]').text)
    Select(d.find_element("css selector", '[data-test="policy-vhost"]')).select_by_value(VHOST)
    fill(d, "policy-name", POLICY)
    fill(d, "policy-pattern", "^ui-core")
    Select(d.find_element("css selector", '[data-test="policy-apply-to"]')).select_by_value("queues")
    d.find_element("css selector", 'button[title="max-length"]').click()
    submit(d, "add-policy")
    wait_for(f'[data-test="policies-table"] tr[data-name="{VHOST}/{POLICY}"]', timeout=15)
    status, pol = warren.api("GET", f"/api/policies/{VHOST}/{POLICY}")
    assert status == 200 and pol["definition"] == {"max-length": 1000} and pol["apply-to"] == "queues"
    shot("admin-policies")
    click(d, d.find_element("css selector", f'[data-test="policies-table"] tr[data-name="{VHOST}/{POLICY}"] [data-test="delete-policy"]'))
    wait_until(lambda: warren.api("GET", f"/api/policies/{VHOST}/{POLICY}")[0] == 404, what="the policy deleted")

    page(f"admin/users/{USER}")
    d.execute_script("window.confirm = () => true")
    click(d, wait_for('[data-test="permissions-table"] tr', text=VHOST).find_element("css selector", '[data-test="clear-permission"]'))
    wait_until(lambda: warren.api("GET", f"/api/permissions/{VHOST}/{USER}")[0] == 404, what="the permission cleared")
    click(d, wait_for('[data-test="delete-user"]'))
    wait_until(lambda: warren.api("GET", f"/api/users/{USER}")[0] == 404, what="the user deleted")

    page(f"admin/vhosts/{quote(VHOST)}")
    d.execute_script("window.confirm = () => true")
    click(d, wait_for('[data-test="delete-vhost"]'))
    wait_until(lambda: warren.api("GET", f"/api/vhosts/{VHOST}")[0] == 404, what="the vhost deleted")

from tests.admin.conftest import add_inquiries, add_subscriber, inquiry_row

async def test_pages_render(admin_client, db):
    ids = await add_inquiries(db, [inquiry_row(i) for i in range(3)])
    sid = await add_subscriber(db, "ana@example.org", topics=("anxiety",))
    for path in ["/admin/", "/admin/inquiries", f"/admin/inquiries/{ids[0]}", "/admin/subscribers",
                 f"/admin/subscribers/{sid}", "/admin/outbox", "/admin/audit", "/admin/users", "/admin/account",
                 "/admin/inquiries/export.csv", "/admin/inquiries?q=client", "/admin/inquiries?q=client1@example.org"]:
        r = await admin_client.get(path)
        assert r.status_code == 200, (path, r.status_code, r.text[:2000])
    print(r.text[:500])

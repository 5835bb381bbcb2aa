"""The team page: owners invite by e-mail with a signed link that expires and works once,
change roles and remove members; an account always keeps an owner; members only look."""

from __future__ import annotations

import re
from datetime import timedelta
from typing import Any
from urllib.parse import urlsplit

import pytest
from django.contrib.auth import get_user_model
from django.core import mail
from django.test import Client
from django.utils import timezone

from integration.members import invitation_accept, invitation_create
from integration.models import Account, AuditEvent, Invitation, Membership
from mifumo.errors import DomainError
from tests.dashboard.support import PASSWORD, dash, flashed

pytestmark = pytest.mark.django_db

LINK = re.compile(r"https?://\S+/invite/\S+/")


def invite(client: Client, email: str = "neema@example.com", role: str = "member") -> Any:
    return client.post(dash("team/invite/"), {"email": email, "role": role})


def mailed_link() -> str:
    [message] = mail.outbox
    found = LINK.search(str(message.body))
    assert found is not None, message.body
    return urlsplit(found.group(0)).path


def test_an_owner_invites_by_email_with_a_signed_link(
    owner_client: Client, alice: Account, owner: Any
) -> None:
    response = invite(owner_client, role="admin")
    assert response.status_code == 302
    invitation = Invitation.objects.get()
    assert (invitation.email, invitation.role, invitation.invited_by) == (
        "neema@example.com",
        "admin",
        owner,
    )
    assert invitation.expires_at - timezone.now() > timedelta(days=6, hours=23)
    [message] = mail.outbox
    assert message.to == ["neema@example.com"]
    assert message.subject == "Join alice on Mifumo SMS"
    assert "asha invites you to join alice" in message.body and "as admin" in message.body
    assert "/api/integration/dashboard/invite/" in message.body
    event = AuditEvent.objects.get(action="invitation.sent")
    assert event.target == "neema@example.com" and event.actor == owner
    page = owner_client.get(dash("team/")).content.decode()
    assert "neema@example.com" in page and "Invitations waiting" in page


def test_accepting_creates_a_login_with_the_invited_address(
    owner_client: Client, alice: Account
) -> None:
    invite(owner_client)
    link = mailed_link()
    visitor = Client()
    form = visitor.get(link)
    assert form.status_code == 200 and b"Join alice" in form.content
    response = visitor.post(
        link, {"username": "neema", "password1": PASSWORD, "password2": PASSWORD}
    )
    assert response.status_code == 302 and response["Location"] == dash()
    user = get_user_model().objects.get(username="neema")
    assert user.email == "neema@example.com"
    assert Membership.objects.get(user=user, account=alice).role == "member"
    assert visitor.get(dash()).context["ws"].account == alice  # signed in, in alice
    assert AuditEvent.objects.filter(action="invitation.accepted", target="neema").exists()
    # The link is used up.
    again = Client().get(link)
    assert again.status_code == 410 and b"was accepted" in again.content


def test_a_signed_in_user_joins_with_their_own_login(
    owner_client: Client, alice: Account, bob: Account, make_user: Any
) -> None:
    juma = make_user("juma", bob, "owner")
    invite(owner_client, email="juma@example.com", role="admin")
    client = Client()
    client.force_login(juma)
    link = mailed_link()
    assert b"Join as juma" in client.get(link).content
    assert client.post(link).status_code == 302
    assert Membership.objects.get(user=juma, account=alice).role == "admin"
    assert client.get(dash()).context["ws"].account == alice


def test_a_username_taken_or_a_weak_password_is_explained(
    owner_client: Client, make_user: Any
) -> None:
    make_user("neema")
    invite(owner_client)
    link = mailed_link()
    taken = Client().post(link, {"username": "NEEMA", "password1": PASSWORD, "password2": PASSWORD})
    assert taken.status_code == 400 and b"A user with that username already exists" in taken.content
    weak = Client().post(link, {"username": "neema2", "password1": "123", "password2": "123"})
    assert weak.status_code == 400 and b"too short" in weak.content
    assert Invitation.objects.get().status == "pending"


def test_a_second_login_with_the_invited_address_is_not_made(
    owner_client: Client, make_user: Any
) -> None:
    existing = make_user("neema")
    existing.email = "Neema@Example.com"
    existing.save(update_fields=["email"])
    invite(owner_client)
    link = mailed_link()
    fields = {"username": "neema2", "password1": PASSWORD, "password2": PASSWORD}
    response = Client().post(link, fields)
    assert response.status_code == 400
    assert "sign in with it, then open this link again" in response.content.decode()
    assert not get_user_model().objects.filter(username="neema2").exists()
    assert Invitation.objects.get().status == "pending"


@pytest.mark.parametrize("how", ["expired-row", "expired-signature", "revoked", "forged"])
def test_a_link_that_is_expired_revoked_or_forged_does_nothing(
    owner_client: Client, settings: Any, how: str
) -> None:
    invite(owner_client)
    link = mailed_link()
    invitation = Invitation.objects.get()
    if how == "expired-row":
        Invitation.objects.update(expires_at=timezone.now() - timedelta(minutes=1))
        expected = (410, b"was expired")
    elif how == "expired-signature":
        settings.MIFUMO_INVITATION_DAYS = 0
        expected = (410, b"This invitation has expired")
    elif how == "revoked":
        owner_client.post(dash(f"team/invitations/{invitation.pk}/revoke/"))
        expected = (410, b"was revoked")
    else:
        link = link[:-3] + "xx/"
        expected = (404, b"This invitation link is not valid")
    visitor = Client()
    page = visitor.get(link)
    assert (page.status_code, expected[1] in page.content) == (expected[0], True)
    post = visitor.post(link, {"username": "neema", "password1": PASSWORD, "password2": PASSWORD})
    assert post.status_code == expected[0]
    assert not get_user_model().objects.filter(username="neema").exists()


def test_a_new_invitation_replaces_the_pending_one(owner_client: Client) -> None:
    invite(owner_client)
    first = mailed_link()
    mail.outbox.clear()
    invite(owner_client, role="admin")
    assert Client().get(first).status_code == 410
    assert Client().get(mailed_link()).status_code == 200
    assert Invitation.objects.filter(revoked_at__isnull=True).count() == 1


def test_inviting_a_member_again_or_a_bad_address_is_refused(
    owner_client: Client, member: Any
) -> None:
    member.email = "baraka@example.com"
    member.save()
    response = invite(owner_client, email="Baraka@Example.com")
    assert response.status_code == 400
    assert b"already belongs to a member of this account" in response.content
    assert invite(owner_client, email="not-an-address").status_code == 400
    assert not Invitation.objects.exists() and mail.outbox == []


def test_a_mail_server_that_is_down_shows_the_link_to_pass_on(
    owner_client: Client, settings: Any
) -> None:
    settings.EMAIL_BACKEND = "django.core.mail.backends.smtp.EmailBackend"
    settings.EMAIL_HOST, settings.EMAIL_PORT, settings.EMAIL_TIMEOUT = "127.0.0.1", 9, 2
    response = invite(owner_client, email="neema@example.com")
    shown = flashed(response)
    assert any("could not be e-mailed" in m and "/invite/" in m for m in shown), shown
    assert Invitation.objects.get().status == "pending"


def test_roles_change_and_members_are_removed(
    owner_client: Client, alice: Account, member: Any, owner: Any
) -> None:
    membership = Membership.objects.get(user=member)
    assert owner_client.post(dash(f"team/members/{membership.pk}/role/"), {"role": "admin"})
    membership.refresh_from_db()
    assert membership.role == "admin"
    event = AuditEvent.objects.get(action="membership.changed")
    assert event.details == {"role": "admin", "was": "member"} and event.actor == owner
    owner_client.post(dash(f"team/members/{membership.pk}/remove/"))
    assert not Membership.objects.filter(pk=membership.pk).exists()
    assert AuditEvent.objects.filter(action="membership.removed", target="baraka").exists()


def test_the_last_owner_cannot_leave_or_step_down(owner_client: Client, owner: Any) -> None:
    mine = Membership.objects.get(user=owner)
    demoted = owner_client.post(dash(f"team/members/{mine.pk}/role/"), {"role": "member"})
    removed = owner_client.post(dash(f"team/members/{mine.pk}/remove/"))
    shown = flashed(demoted) + flashed(removed)
    assert set(shown) == {"An account needs at least one owner: make someone else an owner first"}
    mine.refresh_from_db()
    assert mine.role == "owner"


def test_with_a_second_owner_an_owner_can_step_down(
    owner_client: Client, alice: Account, owner: Any, make_user: Any
) -> None:
    make_user("juma", alice, "owner")
    mine = Membership.objects.get(user=owner)
    owner_client.post(dash(f"team/members/{mine.pk}/role/"), {"role": "member"})
    mine.refresh_from_db()
    assert mine.role == "member"


def test_members_and_admins_see_the_team_but_cannot_change_it(
    alice: Account, member: Any, owner: Any, make_user: Any
) -> None:
    admin = make_user("juma", alice, "admin")
    target = Membership.objects.get(user=owner)
    invitation, _ = invitation_create(
        account=alice, email="x@example.com", role="member", invited_by=owner
    )
    for user in (member, admin):
        client = Client()
        client.force_login(user)
        page = client.get(dash("team/"))
        assert page.status_code == 200 and b"asha" in page.content
        assert b'id="invite-form"' not in page.content and b"Change role" not in page.content
        for path, data in [
            ("team/invite/", {"email": "y@example.com", "role": "owner"}),
            (f"team/members/{target.pk}/role/", {"role": "member"}),
            (f"team/members/{target.pk}/remove/", {}),
            (f"team/invitations/{invitation.pk}/revoke/", {}),
        ]:
            assert client.post(dash(path), data).status_code == 403
    target.refresh_from_db()
    invitation.refresh_from_db()
    assert target.role == "owner" and invitation.status == "pending"
    assert Invitation.objects.count() == 1


def test_another_accounts_members_and_invitations_are_404(
    owner_client: Client, bob: Account, make_user: Any
) -> None:
    stranger = make_user("juma", bob, "member")
    theirs = Membership.objects.get(user=stranger)
    invitation, _ = invitation_create(
        account=bob, email="z@example.com", role="member", invited_by=None
    )
    assert owner_client.post(dash(f"team/members/{theirs.pk}/remove/")).status_code == 404
    assert (
        owner_client.post(dash(f"team/members/{theirs.pk}/role/"), {"role": "owner"}).status_code
        == 404
    )
    assert owner_client.post(dash(f"team/invitations/{invitation.pk}/revoke/")).status_code == 404
    theirs.refresh_from_db()
    assert theirs.role == "member" and Invitation.objects.get(pk=invitation.pk).status == "pending"


def second_owner_invites(make_user: Any, alice: Account, email: str) -> tuple[Any, str]:
    """juma, a second owner, invites ``email`` as an owner: the user and the link."""
    juma = make_user("juma", alice, "owner")
    client = Client()
    client.force_login(juma)
    invite(client, email=email, role="owner")
    return juma, mailed_link()


@pytest.mark.parametrize("how", ["removed", "demoted"])
def test_an_owner_who_leaves_or_steps_down_takes_their_invitations_along(
    owner_client: Client, alice: Account, owner: Any, make_user: Any, how: str
) -> None:
    juma, link = second_owner_invites(make_user, alice, "juma.other@example.com")
    theirs = Membership.objects.get(user=juma)
    if how == "removed":
        owner_client.post(dash(f"team/members/{theirs.pk}/remove/"))
        assert not Membership.objects.filter(pk=theirs.pk).exists()
    else:
        owner_client.post(dash(f"team/members/{theirs.pk}/role/"), {"role": "member"})
        theirs.refresh_from_db()
        assert theirs.role == "member"
    assert Invitation.objects.get().status == "revoked"
    event = AuditEvent.objects.get(action="invitation.revoked")
    assert (event.target, event.details, event.actor) == (
        "juma.other@example.com",
        {"invited_by": "juma"},
        owner,
    )
    # Back through their own link, at another address or with their own login: refused.
    page = Client().get(link)
    assert page.status_code == 410 and b"was revoked" in page.content
    back = Client()
    back.force_login(juma)
    assert back.post(link).status_code == 410
    joined = Client().post(
        link, {"username": "juma2", "password1": PASSWORD, "password2": PASSWORD}
    )
    assert joined.status_code == 410
    assert not get_user_model().objects.filter(username="juma2").exists()
    assert list(Membership.objects.filter(user=juma, role="owner")) == []


def test_an_invitation_from_someone_no_longer_an_owner_is_refused(
    alice: Account, make_user: Any
) -> None:
    """Whichever way the inviter stopped being an owner, and whatever became of the link."""
    juma, link = second_owner_invites(make_user, alice, "neema@example.com")
    Membership.objects.filter(user=juma).update(role="admin")
    assert Invitation.objects.get().status == "pending"
    page = Client().get(link)
    assert page.status_code == 410
    assert b"no longer an owner of alice" in page.content
    signed_in = Client()
    signed_in.force_login(make_user("neema2"))
    for refused in (
        Client().post(link, {"username": "neema", "password1": PASSWORD, "password2": PASSWORD}),
        signed_in.post(link),
    ):
        assert refused.status_code == 410 and b"no longer an owner" in refused.content
    assert not get_user_model().objects.filter(username="neema").exists()
    assert list(Membership.objects.filter(account=alice).values_list("user__username", "role")) == [
        ("juma", "admin")
    ]


def test_accepting_refuses_an_invitation_whose_inviter_is_gone(
    alice: Account, make_user: Any
) -> None:
    """The service refuses too, for a page opened while the inviter was still an owner."""
    juma, _ = second_owner_invites(make_user, alice, "neema@example.com")
    invitation = Invitation.objects.select_related("account").get()
    get_user_model().objects.filter(pk=juma.pk).delete()
    neema = make_user("neema")
    with pytest.raises(DomainError, match="no longer an owner of alice"):
        invitation_accept(invitation=invitation, user=neema)
    assert not Membership.objects.filter(user=neema).exists()

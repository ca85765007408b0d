"""Who may change state. On a laptop (access mode "open") everyone; in a lab ("lab") only a session
that logged in: with the shared password (its scrypt hash is the password_hash setting) or, when
Streamlit's OIDC login is configured (an [auth] section in .streamlit/secrets.toml), with `st.login`.
Reading stays open, and share links show their snapshot only. Guarded: queue, preview, cancel, retry,
clone, rename, archive, delete, notes, share.
"""

from __future__ import annotations

import streamlit as st

from backend import settings
from backend.settings import password_matches

USER = "access.user"


def _oidc() -> bool:
    try:
        return "auth" in st.secrets
    except Exception:  # no secrets file at all
        return False


def user() -> str | None:
    """Who this session is: anyone in open mode, else the logged-in user or None."""
    if settings.get("access_mode") != "lab":
        return "local"
    if _oidc() and getattr(st.user, "is_logged_in", False):
        return st.user.get("email") or st.user.get("name") or "oidc user"
    return st.session_state.get(USER)


def locked() -> bool:
    """True when this session may not change anything."""
    return user() is None


def hint(action: str) -> str | None:
    """The tooltip of a locked control."""
    return f"Log in (sidebar) to {action}" if locked() else None


def login_box() -> None:
    """The sidebar's login, in lab mode."""
    if settings.get("access_mode") != "lab":
        return
    who = user()
    if who is not None:
        st.caption(f"Logged in as {who}")
        if st.button("Log out", key="access.logout"):
            st.logout() if _oidc() and getattr(st.user, "is_logged_in", False) else st.session_state.pop(USER, None)
            st.rerun()
        return
    if _oidc():
        st.button("Log in", key="access.oidc", on_click=st.login)
    stored = settings.get("password_hash")
    if not stored:
        if not _oidc():
            st.warning("Lab mode without a password_hash or an OIDC login: nobody can change anything.")
        return
    with st.form("access.login"):
        name = st.text_input("Name", key="access.name")
        password = st.text_input("Lab password", type="password", key="access.password")
        if st.form_submit_button("Log in"):
            if password_matches(password, stored):
                st.session_state[USER] = name.strip() or "lab member"
                st.rerun()
            st.error("Wrong password.")

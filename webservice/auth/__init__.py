"""Logging in and out: the one login flow, where users come from, the web login's link to its
session family (Flask-Login or the explicit API), endings, CSRF and the same-origin rule."""

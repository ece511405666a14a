"""Conventions shared by every adaptrack subpackage."""

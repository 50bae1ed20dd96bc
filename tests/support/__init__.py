"""Test doubles shared by test folders (never shipped in the product)."""

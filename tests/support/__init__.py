"""Helpers the tests share: fakes, factories, parsers and assertions. No tests here."""

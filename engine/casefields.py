"""The marshmallow fields the case schemas (engine/facts.py) are built from, with less work per value.

A case has ~130 values, and `load_case` is the largest part of an evaluation. These classes are
marshmallow's own fields, validating exactly as before (same results, same error messages);
they only skip work that cannot change the outcome:

- marshmallow's `Field._validate` builds an `And()` of the field's validators for every value,
  even for the many fields that have none;
- `Date` parses the usual 'YYYY-MM-DD' with `date.fromisoformat` (C) instead of a regex and a dict
  of groups; any other text goes through marshmallow's parser, which accepts or refuses it as before.

They are subclasses of marshmallow's classes, so apispec documents them as before.
"""

from __future__ import annotations

import datetime as dt

from marshmallow import fields


class _SkipEmptyValidation:
    def _validate(self, value):
        if self.validators:
            super()._validate(value)


class Field(_SkipEmptyValidation, fields.Field):
    pass


class String(_SkipEmptyValidation, fields.String):
    def _deserialize(self, value, attr, data, **kwargs):
        if type(value) is str:  # what marshmallow returns for a str, without the checks
            return value
        return super()._deserialize(value, attr, data, **kwargs)


class Integer(_SkipEmptyValidation, fields.Integer):
    pass


class Date(_SkipEmptyValidation, fields.Date):
    def _deserialize(self, value, attr, data, **kwargs):
        # marshmallow reads r"\d{4}-\d{1,2}-\d{1,2}$" with dt.date(y, m, d): for ten ASCII
        # characters of that form, fromisoformat gives the same date. Everything else, including
        # an impossible date, is left to marshmallow (and its error message).
        if (
            self.format in (None, "iso")
            and type(value) is str
            and len(value) == 10
            and value.isascii()
            and value[4] == "-"
            and value[7] == "-"
            and value[:4].isdigit()
            and value[5:7].isdigit()
            and value[8:].isdigit()
        ):
            try:
                return dt.date.fromisoformat(value)
            except ValueError:
                pass
        return super()._deserialize(value, attr, data, **kwargs)


class List(_SkipEmptyValidation, fields.List):
    pass


class Nested(_SkipEmptyValidation, fields.Nested):
    pass


class Boolean(_SkipEmptyValidation, fields.Boolean):
    pass

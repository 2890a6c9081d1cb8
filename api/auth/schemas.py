"""Request and response schemas of the account endpoints."""

from __future__ import annotations

from marshmallow import Schema, fields, validate

from api.auth.passwords import MAX_LENGTH, MIN_LENGTH


class PasswordLength(validate.Length):
    message_all = "Use at least {min} and at most {max} characters."


# Hard caps before any hashing; a new password must also meet the policy (422 if common).
Email = fields.Email(required=True, validate=validate.Length(max=254))
Password = fields.String(required=True, validate=validate.Length(min=1, max=1024))
NewPassword = fields.String(
    required=True,
    validate=PasswordLength(min=MIN_LENGTH, max=MAX_LENGTH),
    metadata={"description": "12-128 characters of anything; common passwords are refused."},
)
Token = fields.String(required=True, validate=validate.Length(min=16, max=256))
Name = fields.String(load_default=None, allow_none=True, validate=validate.Length(max=100))


class RegisterIn(Schema):
    email = Email
    password = NewPassword
    name = Name


class EmailIn(Schema):
    email = Email


class LoginIn(Schema):
    email = Email
    password = Password


class TokenIn(Schema):
    token = Token


class ResetPasswordIn(Schema):
    token = Token
    password = NewPassword


class ChangePasswordIn(Schema):
    current_password = Password
    new_password = NewPassword


class ProfileIn(Schema):
    name = fields.String(required=True, allow_none=True, validate=validate.Length(max=100))


class MessageOut(Schema):
    message = fields.String()


class UserOut(Schema):
    id = fields.Integer()
    email = fields.String()
    name = fields.String(allow_none=True)
    role = fields.String()
    email_verified = fields.Function(lambda user: user.email_verified_at is not None)
    created_at = fields.DateTime()
    last_login_at = fields.DateTime(allow_none=True)


class SessionOut(Schema):
    access_token = fields.String()
    token_type = fields.String(dump_default="Bearer")
    expires_in = fields.Integer()
    user = fields.Nested(UserOut)

package mail

// Built-in templates of the account mails the engine sends itself
// (engine.ForgotPassword, engine.ResetPassword), not through a contract
// handler's template: the account API is one route set for every
// contract. Operators override them as any template (LoadTemplate with
// these as the default).
//
// The reset mail's data is as a registration mail's: User, Link, Token
// and Expires. The changed notice gets User and When (the change's time);
// it carries no link, so a mail client cannot be tricked into showing one
// that looks like ours.

// PasswordResetTemplate is the default mail of a password reset link.
func PasswordResetTemplate() *Template {
	return MustParseTemplate(
		"Reset your password",
		`Someone asked to reset the password of the account {{.User.Email}}.

To choose a new password, open this link before {{.Expires.UTC.Format "2006-01-02 15:04 MST"}}:

{{.Link}}

The link works once. If you did not ask for it, ignore this mail: your password stays as it is.
`, "")
}

// PasswordChangedTemplate is the default notice that an account's
// password was changed.
func PasswordChangedTemplate() *Template {
	return MustParseTemplate(
		"Your password was changed",
		`The password of the account {{.User.Email}} was changed on {{.When.UTC.Format "2006-01-02 15:04 MST"}}, and every session of the account was ended.

If you did not change it, reset your password at once and tell us.
`, "")
}

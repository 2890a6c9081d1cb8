import { zodResolver } from '@hookform/resolvers/zod'
import { useMutation } from '@tanstack/react-query'
import { Link, useNavigate, useSearch } from '@tanstack/react-router'
import { useEffect, useRef } from 'react'
import { useForm } from 'react-hook-form'
import { z } from 'zod'

import {
  postV1AuthForgotPassword,
  postV1AuthLogin,
  postV1AuthRegister,
  postV1AuthResetPassword,
  postV1AuthVerifyEmail,
} from '../client/sdk.gen'
import { Button, ErrorNotice, Field, fieldError } from '../components/ui'
import { call, session } from '../lib/api'

const email = z.string().trim().email('Enter a valid email address.').max(254)
const password = z.string().min(12, 'Use at least 12 characters.').max(128, 'Use at most 128 characters.')

const TAGLINE = 'modelgate: text embeddings and a storyteller model behind an OpenAI-compatible API, with tokens, usage and batches.'

function AuthCard({ title, children, tagline = false }: { title: string; children: React.ReactNode; tagline?: boolean }) {
  return (
    <main className="mx-auto mt-12 w-full max-w-md px-4">
      {tagline && <p className="mb-4 text-center text-sm text-slate-700" data-testid="tagline">{TAGLINE}</p>}
      <div className="rounded-lg border border-slate-200 bg-white p-6 shadow-sm">
        <h1 className="mb-4 text-2xl font-bold">{title}</h1>
        {children}
      </div>
    </main>
  )
}

const loginSchema = z.object({ email, password: z.string().min(1, 'Enter your password.') })

export function LoginPage() {
  const navigate = useNavigate()
  const search = useSearch({ from: '/login' })
  const form = useForm({ resolver: zodResolver(loginSchema), defaultValues: { email: '', password: '' } })
  const login = useMutation({
    mutationFn: (body: z.infer<typeof loginSchema>) => call(postV1AuthLogin({ body })),
    onSuccess: (data) => {
      session.start(data.access_token!, data.user!)
      navigate({ to: search.redirect?.startsWith('/') ? search.redirect : '/dashboard' })
    },
  })
  const errors = form.formState.errors
  return (
    <AuthCard title="Sign in" tagline>
      {search.reason && (
        <p role="status" className="mb-4 rounded-md bg-amber-50 p-3 text-sm text-amber-900">
          {search.reason}
        </p>
      )}
      <form className="flex flex-col gap-4" noValidate onSubmit={form.handleSubmit((body) => login.mutate(body))}>
        <Field label="Email" type="email" autoComplete="email" {...form.register('email')} error={fieldError(login.error, 'email', errors.email)} />
        <Field label="Password" type="password" autoComplete="current-password" {...form.register('password')} error={fieldError(login.error, 'password', errors.password)} />
        <ErrorNotice error={login.error} />
        <Button type="submit" disabled={login.isPending}>
          {login.isPending ? 'Signing in…' : 'Sign in'}
        </Button>
      </form>
      <p className="mt-4 flex justify-between text-sm">
        <Link to="/signup" className="text-indigo-700 underline">Create an account</Link>
        <Link to="/forgot-password" className="text-indigo-700 underline">Forgot your password?</Link>
      </p>
    </AuthCard>
  )
}

const signupSchema = z.object({ name: z.string().trim().max(100), email, password })

export function SignupPage() {
  const navigate = useNavigate()
  const form = useForm({ resolver: zodResolver(signupSchema), defaultValues: { name: '', email: '', password: '' } })
  const register = useMutation({
    mutationFn: (body: z.infer<typeof signupSchema>) => call(postV1AuthRegister({ body })),
    onSuccess: (_data, body) => navigate({ to: '/check-email', search: { email: body.email } }),
  })
  const errors = form.formState.errors
  return (
    <AuthCard title="Create your account" tagline>
      <form className="flex flex-col gap-4" noValidate onSubmit={form.handleSubmit((body) => register.mutate(body))}>
        <Field label="Name" autoComplete="name" {...form.register('name')} error={fieldError(register.error, 'name', errors.name)} />
        <Field label="Email" type="email" autoComplete="email" {...form.register('email')} error={fieldError(register.error, 'email', errors.email)} />
        <Field label="Password" type="password" autoComplete="new-password" hint="12 to 128 characters; a phrase is easiest to remember." {...form.register('password')} error={fieldError(register.error, 'password', errors.password)} />
        <ErrorNotice error={register.error} />
        <Button type="submit" disabled={register.isPending}>Create account</Button>
      </form>
      <p className="mt-4 text-sm">
        Already have one? <Link to="/login" className="text-indigo-700 underline">Sign in</Link>
      </p>
    </AuthCard>
  )
}

export function CheckEmailPage() {
  const search = useSearch({ from: '/check-email' })
  return (
    <AuthCard title="Check your email">
      <p className="text-sm">
        We sent a link to <strong>{search.email ?? 'your address'}</strong>. Open it to confirm your address, then sign in.
        It expires in 24 hours.
      </p>
      <p className="mt-4 text-sm text-slate-600">
        Running modelgate yourself with <code>make run</code>? With no mail server set, no email is sent: the link
        is in the server&apos;s log, on the line that starts &ldquo;Verification link for&rdquo;.
      </p>
      <p className="mt-4 text-sm"><Link to="/login" className="text-indigo-700 underline">Back to sign in</Link></p>
    </AuthCard>
  )
}

export function VerifyEmailPage() {
  const search = useSearch({ from: '/verify-email' })
  const verify = useMutation({ mutationFn: (token: string) => call(postV1AuthVerifyEmail({ body: { token } })) })
  const sent = useRef(false)
  useEffect(() => {
    if (search.token && !sent.current) {
      sent.current = true
      verify.mutate(search.token)
    }
  }, [search.token, verify])
  return (
    <AuthCard title="Confirm your email">
      {!search.token && <p role="alert">This link has no token. Open the link from the email again.</p>}
      {verify.isPending && <p role="status">Confirming…</p>}
      {verify.isSuccess && (
        <p role="status" className="text-sm">
          Your email is confirmed. <Link to="/login" className="text-indigo-700 underline">Sign in</Link>
        </p>
      )}
      <ErrorNotice error={verify.error} />
    </AuthCard>
  )
}

export function ForgotPasswordPage() {
  const form = useForm({ resolver: zodResolver(z.object({ email })), defaultValues: { email: '' } })
  const forgot = useMutation({ mutationFn: (body: { email: string }) => call(postV1AuthForgotPassword({ body })) })
  return (
    <AuthCard title="Reset your password">
      {forgot.isSuccess ? (
        <p role="status" className="text-sm">If an account uses that address, a reset link is on its way. It expires in one hour.</p>
      ) : (
        <form className="flex flex-col gap-4" noValidate onSubmit={form.handleSubmit((body) => forgot.mutate(body))}>
          <Field label="Email" type="email" autoComplete="email" {...form.register('email')} error={fieldError(forgot.error, 'email', form.formState.errors.email)} />
          <ErrorNotice error={forgot.error} />
          <Button type="submit" disabled={forgot.isPending}>Send the link</Button>
        </form>
      )}
    </AuthCard>
  )
}

export function ResetPasswordPage() {
  const search = useSearch({ from: '/reset-password' })
  const form = useForm({ resolver: zodResolver(z.object({ password })), defaultValues: { password: '' } })
  const reset = useMutation({
    mutationFn: (body: { password: string }) =>
      call(postV1AuthResetPassword({ body: { token: search.token ?? '', password: body.password } })),
  })
  return (
    <AuthCard title="Choose a new password">
      {reset.isSuccess ? (
        <p role="status" className="text-sm">
          Your password is changed and every session and API token was ended. <Link to="/login" className="text-indigo-700 underline">Sign in</Link>
        </p>
      ) : (
        <form className="flex flex-col gap-4" noValidate onSubmit={form.handleSubmit((body) => reset.mutate(body))}>
          <Field label="New password" type="password" autoComplete="new-password" {...form.register('password')} error={fieldError(reset.error, 'password', form.formState.errors.password)} />
          <ErrorNotice error={reset.error} />
          <Button type="submit" disabled={reset.isPending || !search.token}>Change password</Button>
        </form>
      )}
    </AuthCard>
  )
}

import { forwardRef, useState, type ButtonHTMLAttributes, type InputHTMLAttributes, type ReactNode } from 'react'

import { ApiError } from '../lib/errors'

export function cx(...names: (string | false | null | undefined)[]): string {
  return names.filter(Boolean).join(' ')
}

type ButtonProps = ButtonHTMLAttributes<HTMLButtonElement> & { variant?: 'primary' | 'secondary' | 'danger' }

export function Button({ variant = 'primary', className, ...props }: ButtonProps) {
  const look = {
    primary: 'bg-indigo-600 text-white hover:bg-indigo-700',
    secondary: 'bg-white text-slate-800 border border-slate-300 hover:bg-slate-100',
    danger: 'bg-red-600 text-white hover:bg-red-700',
  }[variant]
  return (
    <button
      className={cx('rounded-md px-3 py-2 text-sm font-medium disabled:opacity-50', look, className)}
      {...props}
    />
  )
}

type FieldProps = InputHTMLAttributes<HTMLInputElement> & { label: string; error?: string; hint?: string }

/** A labelled input whose error (client- or server-side) is announced and tied to it. */
export const Field = forwardRef<HTMLInputElement, FieldProps>(function Field(
  { label, error, hint, id, ...props },
  ref,
) {
  const inputId = id ?? `field-${props.name}`
  const describedBy = [error && `${inputId}-error`, hint && `${inputId}-hint`].filter(Boolean).join(' ')
  return (
    <div className="flex flex-col gap-1">
      <label htmlFor={inputId} className="text-sm font-medium">
        {label}
      </label>
      <input
        ref={ref}
        id={inputId}
        aria-invalid={error ? true : undefined}
        aria-describedby={describedBy || undefined}
        className={cx(
          'rounded-md border px-3 py-2 text-sm',
          error ? 'border-red-600' : 'border-slate-300',
        )}
        {...props}
      />
      {hint && (
        <p id={`${inputId}-hint`} className="text-xs text-slate-600">
          {hint}
        </p>
      )}
      {error && (
        <p id={`${inputId}-error`} className="text-sm text-red-700">
          {error}
        </p>
      )}
    </div>
  )
})

export function CopyButton({ value, label = 'Copy' }: { value: string; label?: string }) {
  const [copied, setCopied] = useState(false)
  return (
    <Button
      type="button"
      variant="secondary"
      onClick={async () => {
        await navigator.clipboard.writeText(value)
        setCopied(true)
        setTimeout(() => setCopied(false), 2000)
      }}
    >
      {copied ? 'Copied' : label}
    </Button>
  )
}

/** Any error, as the user sees it: the message, the fields it names (`fields`) and the trace id to quote. */
export function ErrorNotice({ error, fields = false }: { error: unknown; fields?: boolean }) {
  if (!error) return null
  const apiError =
    error instanceof ApiError
      ? error
      : new ApiError({ status: 0, code: 'unexpected', message: String((error as Error)?.message ?? error) })
  return (
    <div role="alert" className="rounded-md border border-red-300 bg-red-50 p-3 text-sm text-red-900">
      <p className="font-medium">{apiError.message}</p>
      {fields && Object.keys(apiError.fields).length > 0 && (
        <ul className="mt-1 list-inside list-disc">
          {Object.entries(apiError.fields).map(([field, messages]) => (
            <li key={field}>
              <code>{field}</code>: {messages.join(' ')}
            </li>
          ))}
        </ul>
      )}
      {apiError.traceId && (
        <p className="mt-1 flex flex-wrap items-center gap-2">
          <span>
            Quote this id when you report a problem: <code className="font-mono">{apiError.traceId}</code>
          </span>
          <CopyButton value={apiError.traceId} label="Copy id" />
        </p>
      )}
    </div>
  )
}

export function Loading({ what = 'Loading' }: { what?: string }) {
  return (
    <p role="status" className="text-sm text-slate-600">
      {what}…
    </p>
  )
}

export function Empty({ children }: { children: ReactNode }) {
  return <p className="rounded-md border border-dashed border-slate-300 p-6 text-center text-sm text-slate-600">{children}</p>
}

export function Card({ title, children, actions }: { title: string; children: ReactNode; actions?: ReactNode }) {
  return (
    <section className="min-w-0 rounded-lg border border-slate-200 bg-white p-4 shadow-sm" aria-label={title}>
      <div className="mb-3 flex items-center justify-between gap-2">
        <h2 className="text-lg font-semibold">{title}</h2>
        {actions}
      </div>
      {children}
    </section>
  )
}

export function PageTitle({ children }: { children: ReactNode }) {
  return <h1 className="mb-4 text-2xl font-bold">{children}</h1>
}

/** The server's field errors for `name`, else the client-side one. */
export function fieldError(server: unknown, name: string, local?: { message?: string }): string | undefined {
  if (local?.message) return local.message
  if (server instanceof ApiError) return server.fields[name]?.join(' ')
  return undefined
}

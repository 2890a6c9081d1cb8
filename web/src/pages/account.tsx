import { zodResolver } from '@hookform/resolvers/zod'
import { useMutation } from '@tanstack/react-query'
import { useForm } from 'react-hook-form'
import { z } from 'zod'

import { patchV1AuthMe, postV1AuthChangePassword, postV1AuthLogoutAll } from '../client/sdk.gen'
import { Button, Card, ErrorNotice, Field, fieldError, PageTitle } from '../components/ui'
import { call, session } from '../lib/api'
import { useSignedOut } from '../lib/signout'
import { useUser } from '../lib/user'

const nameSchema = z.object({ name: z.string().trim().max(100, 'Use at most 100 characters.') })
const passwordSchema = z.object({
  current_password: z.string().min(1, 'Enter your current password.'),
  new_password: z.string().min(12, 'Use at least 12 characters.').max(128, 'Use at most 128 characters.'),
})

export function AccountPage() {
  const user = useUser()
  const signedOut = useSignedOut()
  const nameForm = useForm({ resolver: zodResolver(nameSchema), values: { name: user?.name ?? '' } })
  const rename = useMutation({
    mutationFn: (body: { name: string }) => call(patchV1AuthMe({ body })),
    onSuccess: (updated) => session.start(session.token()!, updated),
  })
  const passwordForm = useForm({ resolver: zodResolver(passwordSchema), defaultValues: { current_password: '', new_password: '' } })
  const change = useMutation({
    mutationFn: (body: z.infer<typeof passwordSchema>) => call(postV1AuthChangePassword({ body })),
    onSuccess: () => passwordForm.reset(),
  })
  const everywhere = useMutation({
    mutationFn: () => call(postV1AuthLogoutAll()),
    onSuccess: () => signedOut('You are signed out on every device.'),
  })
  return (
    <>
      <PageTitle>Account</PageTitle>
      <div className="grid grid-cols-1 gap-6 lg:grid-cols-2">
        <Card title="Profile">
          <p className="mb-3 text-sm">Signed in as <strong>{user?.email}</strong> ({user?.role}).</p>
          <form className="flex flex-col gap-3" noValidate onSubmit={nameForm.handleSubmit((body) => rename.mutate(body))}>
            <Field label="Name" autoComplete="name" {...nameForm.register('name')} error={fieldError(rename.error, 'name', nameForm.formState.errors.name)} />
            <ErrorNotice error={rename.error} />
            {rename.isSuccess && <p role="status" className="text-sm text-green-700">Saved.</p>}
            <div><Button type="submit" disabled={rename.isPending}>Save name</Button></div>
          </form>
        </Card>
        <Card title="Change password">
          <form className="flex flex-col gap-3" noValidate onSubmit={passwordForm.handleSubmit((body) => change.mutate(body))}>
            <Field label="Current password" type="password" autoComplete="current-password" {...passwordForm.register('current_password')} error={fieldError(change.error, 'current_password', passwordForm.formState.errors.current_password)} />
            <Field label="New password" type="password" autoComplete="new-password" {...passwordForm.register('new_password')} error={fieldError(change.error, 'new_password', passwordForm.formState.errors.new_password)} />
            <ErrorNotice error={change.error} />
            {change.isSuccess && <p role="status" className="text-sm text-green-700">Password changed; your other sessions were ended.</p>}
            <div><Button type="submit" disabled={change.isPending}>Change password</Button></div>
          </form>
        </Card>
        <Card title="Sessions">
          <p className="mb-3 text-sm">Sign out on every browser and device where you are signed in. API tokens keep working.</p>
          <ErrorNotice error={everywhere.error} />
          <Button variant="danger" onClick={() => everywhere.mutate()} disabled={everywhere.isPending}>Sign out everywhere</Button>
        </Card>
      </div>
    </>
  )
}

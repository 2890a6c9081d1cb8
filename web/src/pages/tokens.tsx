import { zodResolver } from '@hookform/resolvers/zod'
import { useMutation, useQuery, useQueryClient } from '@tanstack/react-query'
import { useState } from 'react'
import { useForm } from 'react-hook-form'
import { z } from 'zod'

import { deleteV1TokensByTokenId, getV1Tokens, patchV1TokensByTokenId, postV1Tokens } from '../client/sdk.gen'
import type { TokenCreatedOut, TokenOut } from '../client/types.gen'
import { Dialog } from '../components/dialog'
import { Quickstart } from '../components/quickstart'
import { Button, Card, CopyButton, Empty, ErrorNotice, Field, fieldError, Loading, PageTitle } from '../components/ui'
import { call } from '../lib/api'
import { when } from '../lib/format'

const SCOPES = [
  ['embed', 'Embeddings'],
  ['generate', 'Completions and history'],
  ['usage', 'Read usage'],
  ['batch', 'Files and batches'],
  ['predict', 'Your models'],
] as const

const createSchema = z.object({
  name: z.string().trim().min(1, 'Give the token a name.').max(100, 'Use at most 100 characters.'),
  scopes: z.array(z.enum(['embed', 'generate', 'usage', 'batch', 'predict'])).min(1, 'Choose at least one scope.'),
  expiry: z.enum(['30', '90', '365', 'never']),
})
type CreateForm = z.infer<typeof createSchema>

function CreateToken({ onCreated }: { onCreated: (token: TokenCreatedOut) => void }) {
  const queryClient = useQueryClient()
  const form = useForm<CreateForm>({
    resolver: zodResolver(createSchema),
    defaultValues: { name: '', scopes: ['embed', 'generate'], expiry: '90' },
  })
  const create = useMutation({
    mutationFn: (values: CreateForm) =>
      call(
        postV1Tokens({
          body: {
            name: values.name,
            scopes: values.scopes,
            expires_in_days: values.expiry === 'never' ? null : Number(values.expiry),
          },
        }),
      ),
    onSuccess: (token) => {
      form.reset()
      queryClient.invalidateQueries({ queryKey: ['tokens'] })
      onCreated(token)
    },
  })
  const errors = form.formState.errors
  const scopeError = fieldError(create.error, 'scopes', errors.scopes)
  return (
    <form className="grid gap-4 sm:grid-cols-2" noValidate onSubmit={form.handleSubmit((values) => create.mutate(values))}>
      <Field label="Name" placeholder="laptop, CI, blog demo…" {...form.register('name')} error={fieldError(create.error, 'name', errors.name)} />
      <div className="flex flex-col gap-1">
        <label htmlFor="field-expiry" className="text-sm font-medium">Expires</label>
        <select id="field-expiry" className="rounded-md border border-slate-300 px-3 py-2 text-sm" {...form.register('expiry')}>
          <option value="30">in 30 days</option>
          <option value="90">in 90 days</option>
          <option value="365">in a year</option>
          <option value="never">never</option>
        </select>
      </div>
      <fieldset className="sm:col-span-2" aria-describedby={scopeError ? 'scopes-error' : undefined}>
        <legend className="text-sm font-medium">Scopes</legend>
        <div className="mt-1 flex flex-wrap gap-4">
          {SCOPES.map(([value, label]) => (
            <label key={value} className="flex items-center gap-2 text-sm">
              <input type="checkbox" value={value} {...form.register('scopes')} /> {label} <code className="text-xs">({value})</code>
            </label>
          ))}
        </div>
        {scopeError && <p id="scopes-error" className="text-sm text-red-700">{scopeError}</p>}
      </fieldset>
      <div className="sm:col-span-2"><ErrorNotice error={create.error} /></div>
      <div><Button type="submit" disabled={create.isPending}>Create token</Button></div>
    </form>
  )
}

function TokenRow({ token }: { token: TokenOut }) {
  const queryClient = useQueryClient()
  const [renaming, setRenaming] = useState(false)
  const [name, setName] = useState(token.name ?? '')
  const [confirming, setConfirming] = useState(false)
  const refresh = () => queryClient.invalidateQueries({ queryKey: ['tokens'] })
  const rename = useMutation({
    mutationFn: () => call(patchV1TokensByTokenId({ path: { token_id: token.id! }, body: { name } })),
    onSuccess: () => {
      setRenaming(false)
      refresh()
    },
  })
  const revoke = useMutation({
    mutationFn: () => call(deleteV1TokensByTokenId({ path: { token_id: token.id! } })),
    onSuccess: () => {
      setConfirming(false)
      refresh()
    },
  })
  return (
    <tr className="border-t border-slate-200 align-top">
      <td className="py-2 pr-3">
        {renaming ? (
          <form className="flex gap-2" onSubmit={(event) => { event.preventDefault(); rename.mutate() }}>
            <label className="sr-only" htmlFor={`rename-${token.id}`}>New name</label>
            <input id={`rename-${token.id}`} className="rounded border border-slate-300 px-2 py-1" value={name} onChange={(event) => setName(event.target.value)} />
            <Button type="submit">Save</Button>
          </form>
        ) : (
          token.name
        )}
        {rename.error ? <ErrorNotice error={rename.error} /> : null}
      </td>
      <td className="py-2 pr-3 font-mono text-xs">{token.prefix}…{token.last_four}</td>
      <td className="py-2 pr-3">{token.scopes?.join(', ')}</td>
      <td className="py-2 pr-3">{when(token.last_used_at)}</td>
      <td className="py-2 pr-3">{when(token.expires_at)}</td>
      <td className="py-2">
        {token.revoked_at ? (
          <span className="text-slate-500">revoked {when(token.revoked_at)}</span>
        ) : (
          <div className="flex gap-2">
            <Button variant="secondary" onClick={() => setRenaming(!renaming)}>Rename</Button>
            <Button variant="danger" onClick={() => setConfirming(true)}>Revoke</Button>
          </div>
        )}
        <Dialog open={confirming} onOpenChange={setConfirming} title={`Revoke “${token.name}”?`} description="Programs using it get 401 from the next call. This cannot be undone.">
          <ErrorNotice error={revoke.error} />
          <div className="flex justify-end gap-2">
            <Button variant="secondary" onClick={() => setConfirming(false)}>Keep it</Button>
            <Button variant="danger" onClick={() => revoke.mutate()} disabled={revoke.isPending}>Revoke token</Button>
          </div>
        </Dialog>
      </td>
    </tr>
  )
}

export function TokensPage() {
  const tokens = useQuery({ queryKey: ['tokens'], queryFn: () => call(getV1Tokens()) })
  const [created, setCreated] = useState<TokenCreatedOut | null>(null)
  return (
    <>
      <PageTitle>API tokens</PageTitle>
      <div className="flex flex-col gap-6">
        <Card title="Create a token">
          <CreateToken onCreated={setCreated} />
        </Card>
        <Card title="Your tokens">
          {tokens.isPending && <Loading what="Loading tokens" />}
          <ErrorNotice error={tokens.error} />
          {tokens.data && tokens.data.data?.length === 0 && <Empty>No tokens yet. Create one above to call the API from curl or the OpenAI client.</Empty>}
          {tokens.data && (tokens.data.data?.length ?? 0) > 0 && (
            <div className="overflow-x-auto">
              <table className="w-full text-left text-sm">
                <thead>
                  <tr>
                    <th scope="col" className="pr-3">Name</th>
                    <th scope="col" className="pr-3">Token</th>
                    <th scope="col" className="pr-3">Scopes</th>
                    <th scope="col" className="pr-3">Last used</th>
                    <th scope="col" className="pr-3">Expires</th>
                    <th scope="col"><span className="sr-only">Actions</span></th>
                  </tr>
                </thead>
                <tbody>{tokens.data.data?.map((token) => <TokenRow key={token.id} token={token} />)}</tbody>
              </table>
            </div>
          )}
        </Card>
      </div>
      <Dialog wide open={created !== null} onOpenChange={(open) => !open && setCreated(null)} title="Your new token" description="Copy it now: it is shown this once, and only a hash of it is kept.">
        <p className="rounded-md bg-amber-50 p-3 text-sm text-amber-900" role="note">
          Treat it like a password. Anyone with it can call the API as you, within its scopes.
        </p>
        <div className="mt-3 flex items-center gap-2">
          <code data-testid="new-token" className="flex-1 break-all rounded bg-slate-100 p-2 font-mono text-sm">{created?.token}</code>
          <CopyButton value={created?.token ?? ''} />
        </div>
        <h3 className="mb-2 mt-4 font-semibold">Your first call</h3>
        {created?.token && <Quickstart token={created.token} />}
        <div className="mt-4 flex justify-end"><Button onClick={() => setCreated(null)}>Done</Button></div>
      </Dialog>
    </>
  )
}

import { keepPreviousData, useMutation, useQuery, useQueryClient } from '@tanstack/react-query'
import { useState } from 'react'

import { getV1AdminSettings, getV1AdminUsage, getV1AdminUsers, patchV1AdminUsersByUserId } from '../client/sdk.gen'
import type { AdminUserOut, UserUpdateIn } from '../client/types.gen'
import { Dialog } from '../components/dialog'
import { Button, Card, Empty, ErrorNotice, Loading, PageTitle } from '../components/ui'
import { call } from '../lib/api'
import { count, when } from '../lib/format'
import { discoverUrl } from '../lib/kibana'
import { perUser, totals } from '../lib/usage'
import { useUser } from '../lib/user'

const PER_PAGE = 20

const LIMIT_FORMAT = 'Calls per period, e.g. 100/minute or 100/minute;10000/day. Empty: the default.'

function UserRow({ user, self }: { user: AdminUserOut; self: boolean }) {
  const queryClient = useQueryClient()
  const [limit, setLimit] = useState(user.rate_limit ?? '')
  const [confirming, setConfirming] = useState(false)
  const [saved, setSaved] = useState<string | null>(null)
  const update = useMutation({
    mutationFn: (body: UserUpdateIn) => call(patchV1AdminUsersByUserId({ path: { user_id: user.id! }, body })),
    onMutate: () => setSaved(null),
    onSuccess: (changed, body) => {
      setConfirming(false)
      if ('rate_limit' in body) setSaved(changed.rate_limit ? `Limit set: ${changed.rate_limit}.` : 'Default limit restored.')
      queryClient.invalidateQueries({ queryKey: ['admin-users'] })
    },
  })
  return (
    <tr className="border-t border-slate-200 align-top" data-testid={`user-${user.email}`}>
      <td className="py-2 pr-3">{user.email}<br /><span className="text-xs text-slate-600">{user.name}</span></td>
      <td className="py-2 pr-3">
        {self ? (
          <span title="Another administrator can change your role">{user.role} (you)</span>
        ) : (
          <>
            <label className="sr-only" htmlFor={`role-${user.id}`}>Role of {user.email}</label>
            <select id={`role-${user.id}`} className="rounded border border-slate-300 px-2 py-1" value={user.role} onChange={(event) => update.mutate({ role: event.target.value as 'user' | 'admin' })}>
              <option value="user">user</option>
              <option value="admin">admin</option>
            </select>
          </>
        )}
      </td>
      <td className="py-2 pr-3">
        <form className="flex gap-2" onSubmit={(event) => { event.preventDefault(); update.mutate({ rate_limit: limit || null }) }}>
          <label className="sr-only" htmlFor={`limit-${user.id}`}>Rate limit of {user.email}</label>
          <input id={`limit-${user.id}`} aria-describedby="limit-format" className="w-40 rounded border border-slate-300 px-2 py-1" placeholder="default" value={limit} onChange={(event) => setLimit(event.target.value)} />
          <Button type="submit" variant="secondary">Set</Button>
        </form>
        {saved && <p role="status" className="mt-1 text-xs text-green-800">{saved}</p>}
      </td>
      <td className="py-2 pr-3">{when(user.last_login_at)}</td>
      <td className="py-2">
        {self ? (
          <span className="text-slate-600">your account</span>
        ) : user.disabled ? (
          <Button variant="secondary" onClick={() => update.mutate({ disabled: false })}>Enable</Button>
        ) : (
          <Button variant="danger" onClick={() => setConfirming(true)}>Disable</Button>
        )}
        <ErrorNotice error={update.error} />
        <Dialog open={confirming} onOpenChange={setConfirming} title={`Disable ${user.email}?`} description="They are signed out at once, and their tokens stop working until the account is enabled again.">
          <div className="flex justify-end gap-2">
            <Button variant="secondary" onClick={() => setConfirming(false)}>Keep enabled</Button>
            <Button variant="danger" onClick={() => update.mutate({ disabled: true })} disabled={update.isPending}>Disable account</Button>
          </div>
        </Dialog>
      </td>
    </tr>
  )
}

/** With KIBANA_URL configured: a trace id (from a user's report) opens Discover filtered on it. */
function TraceLookup({ kibana }: { kibana: string }) {
  const [trace, setTrace] = useState('')
  const valid = /^[A-Za-z0-9._-]{1,64}$/.test(trace.trim())
  return (
    <Card title="Look up a trace">
      <div className="flex flex-wrap items-end gap-2">
        <div className="flex flex-1 flex-col gap-1">
          <label htmlFor="trace-id" className="text-sm font-medium">Trace id (from a user&apos;s error message)</label>
          <input id="trace-id" className="rounded-md border border-slate-300 px-3 py-2 font-mono text-sm" value={trace} onChange={(event) => setTrace(event.target.value)} />
        </div>
        {valid ? (
          <a className="rounded-md bg-indigo-600 px-3 py-2 text-sm font-medium text-white" href={discoverUrl(kibana, trace.trim())} target="_blank" rel="noreferrer">Open in Kibana</a>
        ) : (
          <span className="text-sm text-slate-600">1–64 letters, digits, dots, dashes or underscores</span>
        )}
      </div>
    </Card>
  )
}

export function AdminPage() {
  const me = useUser()
  const [query, setQuery] = useState('')
  const [search, setSearch] = useState('')
  const [page, setPage] = useState(1)
  const users = useQuery({
    queryKey: ['admin-users', search, page],
    queryFn: () => call(getV1AdminUsers({ query: { q: search || undefined, page, per_page: PER_PAGE } })),
    placeholderData: keepPreviousData,
  })
  const usage = useQuery({ queryKey: ['admin-usage'], queryFn: () => call(getV1AdminUsage({ query: { days: 30 } })) })
  const settings = useQuery({ queryKey: ['admin-settings'], queryFn: () => call(getV1AdminSettings()) })
  const pages = Math.max(1, Math.ceil((users.data?.total ?? 0) / PER_PAGE))
  const people = perUser(usage.data?.data ?? [])
  const all = usage.data ? totals(usage.data.data ?? [], usage.data.rate_limited ?? []) : null
  return (
    <>
      <PageTitle>Admin</PageTitle>
      <div className="flex flex-col gap-6">
        {settings.data?.kibana_url && <TraceLookup kibana={settings.data.kibana_url} />}
        <Card title="Users">
          <form className="mb-3 flex gap-2" role="search" onSubmit={(event) => { event.preventDefault(); setPage(1); setSearch(query.trim()) }}>
            <label htmlFor="user-search" className="sr-only">Search users by email or name</label>
            <input id="user-search" type="search" className="flex-1 rounded-md border border-slate-300 px-3 py-2 text-sm" placeholder="Search by email or name" value={query} onChange={(event) => setQuery(event.target.value)} />
            <Button type="submit">Search</Button>
          </form>
          {users.isPending && <Loading what="Loading users" />}
          <ErrorNotice error={users.error} />
          {users.data && users.data.items?.length === 0 && <Empty>No user matches “{search}”.</Empty>}
          {users.data && (users.data.items?.length ?? 0) > 0 && (
            <div className="overflow-x-auto">
              <table className="w-full text-left text-sm">
                <thead><tr><th scope="col">User</th><th scope="col">Role</th><th scope="col">Rate limit</th><th scope="col">Last sign-in</th><th scope="col">Access</th></tr></thead>
                <tbody>{users.data.items?.map((user) => <UserRow key={user.id} user={user} self={user.id === me?.id} />)}</tbody>
              </table>
              <p id="limit-format" className="mt-2 text-xs text-slate-600">Rate limit: {LIMIT_FORMAT}</p>
            </div>
          )}
          <nav aria-label="Pages of users" className="mt-3 flex items-center gap-2 text-sm">
            <Button variant="secondary" onClick={() => setPage(page - 1)} disabled={page <= 1}>Previous</Button>
            <span>Page {page} of {pages} ({users.data?.total ?? 0} users)</span>
            <Button variant="secondary" onClick={() => setPage(page + 1)} disabled={page >= pages}>Next</Button>
          </nav>
        </Card>
        <Card title="Usage across users (30 days)">
          {usage.isPending && <Loading />}
          <ErrorNotice error={usage.error} />
          {all && (
            <>
              <p className="mb-3 text-sm">{count(all.requests)} calls, {count(all.batch)} batch lines, {count(all.errors)} errors, {count(all.rejected)} rate limited.</p>
              {people.length === 0 ? <Empty>No calls yet.</Empty> : (
                <div className="overflow-x-auto"><table className="text-left text-sm" data-testid="usage-per-user">
                  <thead><tr><th scope="col" className="pr-6">User</th><th scope="col" className="pr-6">Calls</th><th scope="col" className="pr-6">Batch lines</th><th scope="col">Errors</th></tr></thead>
                  <tbody>{people.map((person) => <tr key={person.userId}><td className="break-all pr-6">{person.email}</td><td className="pr-6">{count(person.calls)}</td><td className="pr-6">{count(person.batch)}</td><td>{count(person.errors)}</td></tr>)}</tbody>
                </table></div>
              )}
            </>
          )}
        </Card>
      </div>
    </>
  )
}

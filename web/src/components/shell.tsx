import { useMutation, useQuery } from '@tanstack/react-query'
import { Link, Outlet } from '@tanstack/react-router'

import { getV1AuthMe, postV1AuthLogout } from '../client/sdk.gen'
import { call } from '../lib/api'
import { useSignedOut } from '../lib/signout'
import { useUser } from '../lib/user'
import { Button } from './ui'

const LINKS = [
  ['/dashboard', 'Dashboard'],
  ['/tokens', 'API tokens'],
  ['/usage', 'Usage'],
  ['/playground', 'Playground'],
  ['/history', 'History'],
  ['/batches', 'Batches'],
  ['/account', 'Account'],
] as const

/** The signed-in frame: navigation, and a light check that the account still may act. */
export function AppShell() {
  const user = useUser()
  const signedOut = useSignedOut()
  // A disabled account or a revoked session is noticed within this interval even
  // on a page that makes no calls of its own; apiFetch then ends the session.
  useQuery({ queryKey: ['me'], queryFn: () => call(getV1AuthMe()), refetchInterval: 5_000 })
  const logout = useMutation({
    mutationFn: () => call(postV1AuthLogout()),
    onSettled: () => signedOut('You are signed out.'),
  })
  return (
    <div className="min-h-screen">
      <header className="border-b border-slate-200 bg-white">
        <div className="mx-auto flex max-w-6xl flex-wrap items-center gap-x-4 gap-y-2 px-4 py-3">
          <Link to="/dashboard" className="text-lg font-bold text-indigo-700">modelgate</Link>
          <nav aria-label="Main" className="flex flex-wrap gap-3 text-sm">
            {LINKS.map(([to, label]) => (
              <Link key={to} to={to} className="rounded px-1 py-0.5 hover:underline" activeProps={{ className: 'font-semibold underline', 'aria-current': 'page' }}>
                {label}
              </Link>
            ))}
            {user?.role === 'admin' && (
              <Link to="/admin" className="rounded px-1 py-0.5 hover:underline" activeProps={{ className: 'font-semibold underline', 'aria-current': 'page' }}>
                Admin
              </Link>
            )}
          </nav>
          <div className="ml-auto flex items-center gap-2 text-sm">
            <span className="hidden sm:inline" data-testid="signed-in-as">{user?.email}</span>
            <Button variant="secondary" onClick={() => logout.mutate()} disabled={logout.isPending}>Sign out</Button>
          </div>
        </div>
      </header>
      <main className="mx-auto max-w-6xl px-4 py-6">
        <Outlet />
      </main>
    </div>
  )
}

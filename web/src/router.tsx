import type { QueryClient } from '@tanstack/react-query'
import {
  createRootRouteWithContext,
  createRoute,
  createRouter,
  lazyRouteComponent,
  Link,
  Outlet,
  redirect,
  useNavigate,
} from '@tanstack/react-router'
import { useEffect } from 'react'

import {
  CheckEmailPage,
  ForgotPasswordPage,
  LoginPage,
  ResetPasswordPage,
  SignupPage,
  VerifyEmailPage,
} from './pages/auth'
import { DashboardPage } from './pages/dashboard'
import { AppShell } from './components/shell'
import { refreshSession, session } from './lib/api'
import { currentUser } from './lib/user'

type Context = { queryClient: QueryClient }

function Root() {
  const navigate = useNavigate()
  useEffect(() => {
    const stop = session.onEnd((message) => {
      navigate({ to: '/login', search: { reason: message, redirect: window.location.pathname } })
    })
    return () => {
      stop()
    }
  }, [navigate])
  return <Outlet />
}

const rootRoute = createRootRouteWithContext<Context>()({
  component: Root,
  notFoundComponent: () => (
    <main className="p-8">
      <h1 className="text-2xl font-bold">Page not found</h1>
      <Link to="/" className="text-indigo-700 underline">Go home</Link>
    </main>
  ),
})

/** Signed in, or silently signed back in from the refresh cookie, or off to the login. */
async function requireSession({ location }: { location: { href: string } }) {
  if (session.token() || (await refreshSession()).ok) return
  throw redirect({ to: '/login', search: { redirect: location.href } })
}

type Search = Record<string, unknown>
const text = (value: unknown) => (typeof value === 'string' ? value : undefined)

const loginRoute = createRoute({
  getParentRoute: () => rootRoute,
  path: '/login',
  validateSearch: (search: Search): { reason?: string; redirect?: string } => ({ reason: text(search.reason), redirect: text(search.redirect) }),
  component: LoginPage,
})
const signupRoute = createRoute({ getParentRoute: () => rootRoute, path: '/signup', component: SignupPage })
const checkEmailRoute = createRoute({
  getParentRoute: () => rootRoute,
  path: '/check-email',
  validateSearch: (search: Search): { email?: string } => ({ email: text(search.email) }),
  component: CheckEmailPage,
})
const verifyRoute = createRoute({
  getParentRoute: () => rootRoute,
  path: '/verify-email',
  validateSearch: (search: Search): { token?: string } => ({ token: text(search.token) }),
  component: VerifyEmailPage,
})
const forgotRoute = createRoute({ getParentRoute: () => rootRoute, path: '/forgot-password', component: ForgotPasswordPage })
const resetRoute = createRoute({
  getParentRoute: () => rootRoute,
  path: '/reset-password',
  validateSearch: (search: Search): { token?: string } => ({ token: text(search.token) }),
  component: ResetPasswordPage,
})

const appRoute = createRoute({
  getParentRoute: () => rootRoute,
  id: 'app',
  beforeLoad: requireSession,
  component: AppShell,
})
const dashboardRoute = createRoute({ getParentRoute: () => appRoute, path: '/dashboard', component: DashboardPage })
const tokensRoute = createRoute({ getParentRoute: () => appRoute, path: '/tokens', component: lazyRouteComponent(() => import('./pages/tokens'), 'TokensPage') })
const usageRoute = createRoute({ getParentRoute: () => appRoute, path: '/usage', component: lazyRouteComponent(() => import('./pages/usage'), 'UsagePage') })
const playgroundRoute = createRoute({ getParentRoute: () => appRoute, path: '/playground', component: lazyRouteComponent(() => import('./pages/playground'), 'PlaygroundPage') })
const historyRoute = createRoute({ getParentRoute: () => appRoute, path: '/history', component: lazyRouteComponent(() => import('./pages/history'), 'HistoryPage') })
const batchesRoute = createRoute({ getParentRoute: () => appRoute, path: '/batches', component: lazyRouteComponent(() => import('./pages/batches'), 'BatchesPage') })
const accountRoute = createRoute({ getParentRoute: () => appRoute, path: '/account', component: lazyRouteComponent(() => import('./pages/account'), 'AccountPage') })

const indexRoute = createRoute({
  getParentRoute: () => rootRoute,
  path: '/',
  beforeLoad: () => {
    throw redirect({ to: '/dashboard' })
  },
})
const adminRoute = createRoute({
  getParentRoute: () => appRoute,
  path: '/admin',
  beforeLoad: () => {
    if (currentUser()?.role !== 'admin') throw redirect({ to: '/dashboard' })
  },
  component: lazyRouteComponent(() => import('./pages/admin'), 'AdminPage'),
})

const routeTree = rootRoute.addChildren([
  indexRoute,
  loginRoute,
  signupRoute,
  checkEmailRoute,
  verifyRoute,
  forgotRoute,
  resetRoute,
  appRoute.addChildren([dashboardRoute, tokensRoute, usageRoute, playgroundRoute, historyRoute, batchesRoute, accountRoute, adminRoute]),
])

export const router = createRouter({ routeTree, context: { queryClient: undefined! } })

declare module '@tanstack/react-router' {
  interface Register {
    router: typeof router
  }
}

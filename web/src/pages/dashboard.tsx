import { useQuery } from '@tanstack/react-query'
import { Link } from '@tanstack/react-router'

import { getV1Models, getV1Tokens, getV1Usage } from '../client/sdk.gen'
import { Quickstart } from '../components/quickstart'
import { Card, Empty, ErrorNotice, Loading, PageTitle } from '../components/ui'
import { call } from '../lib/api'
import { count } from '../lib/format'
import { totals } from '../lib/usage'
import { useUser } from '../lib/user'

export function DashboardPage() {
  const user = useUser()
  const models = useQuery({ queryKey: ['models'], queryFn: () => call(getV1Models()) })
  const tokens = useQuery({ queryKey: ['tokens'], queryFn: () => call(getV1Tokens()) })
  const usage = useQuery({ queryKey: ['usage', 7], queryFn: () => call(getV1Usage({ query: { days: 7 } })), refetchOnMount: 'always' })
  const week = usage.data ? totals(usage.data.data ?? [], usage.data.rate_limited ?? []) : null
  const live = tokens.data?.data?.filter((token) => !token.revoked_at).length
  return (
    <>
      <PageTitle>Welcome{user?.name ? `, ${user.name}` : ''}</PageTitle>
      <div className="grid gap-6 md:grid-cols-3">
        <Card title="This week">
          {usage.isPending && <Loading />}
          <ErrorNotice error={usage.error} />
          {week && (
            <p className="text-sm">
              <span className="text-3xl font-bold">{count(week.requests)}</span> calls, {count(week.batch)} batch lines, {count(week.errors)} errors,{' '}
              {count(week.rejected)} rate limited. <Link to="/usage" className="text-indigo-700 underline">See usage</Link>
            </p>
          )}
        </Card>
        <Card title="API tokens">
          {tokens.isPending && <Loading />}
          <ErrorNotice error={tokens.error} />
          {tokens.data && (
            <p className="text-sm">
              <span className="text-3xl font-bold">{live}</span> live. <Link to="/tokens" className="text-indigo-700 underline">Manage tokens</Link>
            </p>
          )}
        </Card>
        <Card title="Try it">
          <p className="text-sm">Stream a story or compare sentences in the <Link to="/playground" className="text-indigo-700 underline">playground</Link>.</p>
        </Card>
      </div>
      <div className="mt-6">
        <Card title="Quickstart">
          <p className="mb-3 text-sm">
            modelgate speaks OpenAI&apos;s API: point any OpenAI client at the base URL with a token of yours (
            <Link to="/tokens" className="text-indigo-700 underline">create one</Link>).
          </p>
          <Quickstart />
        </Card>
      </div>
      <div className="mt-6">
        <Card title="Models">
          {models.isPending && <Loading what="Loading models" />}
          <ErrorNotice error={models.error} />
          {models.data?.data?.length === 0 && <Empty>No models are loaded on this server.</Empty>}
          <ul className="grid gap-3 sm:grid-cols-2">
            {models.data?.data?.map((model) => (
              <li key={model.id} className="rounded-md border border-slate-200 p-3 text-sm">
                <p className="font-mono font-semibold">{model.id}</p>
                <p>{model.task} · {count(model.parameters ?? 0)} parameters · {model.max_input} tokens in · {model.device}</p>
              </li>
            ))}
          </ul>
        </Card>
      </div>
    </>
  )
}

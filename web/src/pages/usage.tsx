import { useMutation, useQuery } from '@tanstack/react-query'
import { useState } from 'react'
import { Bar, CartesianGrid, ComposedChart, Legend, Line, ResponsiveContainer, Tooltip, XAxis, YAxis } from 'recharts'

import { getV1Models, getV1Tokens, getV1Usage, getV1UsageCsv } from '../client/sdk.gen'
import { Button, Card, Empty, ErrorNotice, Loading, PageTitle } from '../components/ui'
import { call } from '../lib/api'
import { count } from '../lib/format'
import { byDay, byModel, sourceLabel, totals, unitsLabel } from '../lib/usage'

const PALETTE = ['#4f46e5', '#0891b2', '#16a34a', '#ca8a04', '#9333ea', '#db2777', '#475569']

export function UsagePage() {
  const [days, setDays] = useState(7)
  // Calls made a moment ago (playground, curl) must show: always ask again on arrival.
  const usage = useQuery({ queryKey: ['usage', days], queryFn: () => call(getV1Usage({ query: { days } })), refetchOnMount: 'always' })
  const tokens = useQuery({ queryKey: ['tokens'], queryFn: () => call(getV1Tokens()) })
  const served = useQuery({ queryKey: ['models'], queryFn: () => call(getV1Models()) })
  // A handler model's unit (images, items ...) from its declaration; the others count tokens.
  const unitOf = new Map((served.data?.data ?? []).map((model) => [model.id ?? '', (model.schema as { units?: string } | undefined)?.units]))
  const download = useMutation({
    mutationFn: async () => {
      const text = await call(getV1UsageCsv({ query: { days }, parseAs: 'text' }))
      const link = document.createElement('a')
      link.href = URL.createObjectURL(new Blob([text as unknown as string], { type: 'text/csv' }))
      link.download = `modelgate-usage-${days}d.csv`
      link.click()
      URL.revokeObjectURL(link.href)
    },
  })
  const names = new Map((tokens.data?.data ?? []).map((token) => [token.id!, token.name ?? '']))
  const rows = usage.data?.data ?? []
  const rejected = usage.data?.rate_limited ?? []
  const { points, series } = byDay(rows, rejected, days, names)
  const sum = totals(rows, rejected)
  const models = byModel(rows)
  return (
    <>
      <PageTitle>Usage</PageTitle>
      <div className="mb-4 flex flex-wrap items-center gap-2" role="group" aria-label="Period">
        {[7, 30, 90].map((choice) => (
          <Button key={choice} variant={choice === days ? 'primary' : 'secondary'} aria-pressed={choice === days} onClick={() => setDays(choice)}>
            {choice} days
          </Button>
        ))}
        <Button variant="secondary" className="ml-auto" onClick={() => download.mutate()} disabled={download.isPending}>Download CSV</Button>
      </div>
      <ErrorNotice error={download.error} />
      {usage.isPending && <Loading what="Loading usage" />}
      <ErrorNotice error={usage.error} />
      {usage.data && (
        <div className="flex flex-col gap-6">
          <dl className="grid grid-cols-2 gap-3 sm:grid-cols-6" data-testid="usage-totals">
            {[
              ['Calls', sum.requests],
              ['Batch lines', sum.batch],
              ['Errors', sum.errors],
              ['Rate limited (429)', sum.rejected],
              ['Tokens in', sum.tokensIn],
              ['Tokens out', sum.tokensOut],
            ].map(([label, value]) => (
              <div key={label} className="rounded-lg border border-slate-200 bg-white p-3">
                <dt className="text-xs text-slate-600">{label}</dt>
                <dd className="text-xl font-semibold">{count(value as number)}</dd>
              </div>
            ))}
          </dl>
          <Card title={`Calls per day, by source (last ${days} days)`}>
            {rows.length === 0 && rejected.length === 0 ? (
              <Empty>No calls in this period yet. Try the playground, or call the API with a token.</Empty>
            ) : (
              <figure data-testid="usage-chart" aria-label={`Chart: ${sum.requests} calls, ${sum.batch} batch lines, ${sum.errors} errors and ${sum.rejected} rate-limited calls over ${days} days`}>
                <ResponsiveContainer width="100%" height={300}>
                  <ComposedChart data={points}>
                    <CartesianGrid strokeDasharray="3 3" />
                    <XAxis dataKey="date" fontSize={12} />
                    <YAxis yAxisId="calls" allowDecimals={false} fontSize={12} label={{ value: 'calls', angle: -90, position: 'insideLeft', fontSize: 12 }} />
                    {/* Errors and 429s on their own axis: a handful stays visible beside thousands of calls. */}
                    <YAxis yAxisId="errors" orientation="right" allowDecimals={false} fontSize={12} stroke="#b91c1c" label={{ value: 'errors, 429s', angle: 90, position: 'insideRight', fontSize: 12 }} />
                    <Tooltip />
                    <Legend />
                    {series.map((name, index) => (
                      <Bar key={name} yAxisId="calls" dataKey={name} stackId="calls" fill={PALETTE[index % PALETTE.length]} isAnimationActive={false} />
                    ))}
                    <Line yAxisId="errors" dataKey="errors" name="errors" stroke="#dc2626" strokeWidth={2} dot isAnimationActive={false} />
                    <Line yAxisId="errors" dataKey="rejected" name="429s" stroke="#ea580c" strokeDasharray="4 2" strokeWidth={2} dot isAnimationActive={false} />
                  </ComposedChart>
                </ResponsiveContainer>
              </figure>
            )}
          </Card>
          <Card title="By model">
            {models.length === 0 ? <Empty>No calls yet.</Empty> : (
              <div className="overflow-x-auto">
                <table className="w-full text-left text-sm" data-testid="usage-by-model">
                  <thead><tr><th scope="col">Model</th><th scope="col">Calls</th><th scope="col">Batch lines</th><th scope="col">Errors</th><th scope="col">Tokens in / out</th><th scope="col">Units</th></tr></thead>
                  <tbody>
                    {models.map((line) => (
                      <tr key={line.model} className="border-t border-slate-200">
                        <td className="font-mono text-xs">{line.model}</td>
                        <td>{count(line.calls)}</td>
                        <td>{count(line.batch)}</td>
                        <td>{count(line.errors)}</td>
                        <td>{count(line.tokensIn)} / {count(line.tokensOut)}</td>
                        <td>{unitsLabel(line.units, unitOf.get(line.model))}</td>
                      </tr>
                    ))}
                  </tbody>
                </table>
              </div>
            )}
          </Card>
          <Card title="Rows">
            {rows.length === 0 ? <Empty>No rows.</Empty> : (
              <div className="overflow-x-auto">
                <table className="w-full text-left text-sm">
                  <thead><tr><th scope="col">Day</th><th scope="col">Source</th><th scope="col">Endpoint</th><th scope="col">Model</th><th scope="col">Calls</th><th scope="col">Errors</th><th scope="col">Tokens in / out</th><th scope="col">Units</th></tr></thead>
                  <tbody>
                    {rows.map((row, index) => (
                      <tr key={index} className="border-t border-slate-200">
                        <td>{row.date}</td>
                        <td>{sourceLabel(row, names)}</td>
                        <td className="font-mono text-xs">{row.endpoint}</td>
                        <td className="font-mono text-xs">{row.model ?? '–'}</td>
                        <td>{row.requests}</td>
                        <td>{row.errors}</td>
                        <td>{row.tokens_in} / {row.tokens_out}</td>
                        <td>{unitsLabel(row.units ?? 0, unitOf.get(row.model ?? ''))}</td>
                      </tr>
                    ))}
                  </tbody>
                </table>
              </div>
            )}
          </Card>
        </div>
      )}
    </>
  )
}



import { useMutation, useQuery, useQueryClient } from '@tanstack/react-query'
import { useRef, useState } from 'react'

import { getV1Batches, getV1FilesByFileIdContent, postV1Batches, postV1BatchesByBatchIdCancel, postV1Files } from '../client/sdk.gen'
import type { BatchOut } from '../client/types.gen'
import { Button, Card, Empty, ErrorNotice, Loading, PageTitle } from '../components/ui'
import { call } from '../lib/api'
import { at, canCancel, isActive, problems, progress } from '../lib/batches'

const ENDPOINTS = ['/v1/embeddings', '/v1/completions', '/v1/chat/completions', '/v1/responses'] as const
const EXAMPLE = '{"custom_id": "frog-1", "method": "POST", "url": "/v1/embeddings", "body": {"input": "A frog prince"}}'

export function BatchesPage() {
  const queryClient = useQueryClient()
  const batches = useQuery({
    queryKey: ['batches'],
    queryFn: () => call(getV1Batches({ query: { limit: 50 } })),
    // A progress bar that moves: ask again every second while a batch is still running.
    refetchInterval: (query) => ((query.state.data?.data ?? []).some(isActive) ? 1_000 : false),
  })
  const list = batches.data?.data ?? []
  return (
    <>
      <PageTitle>Batches</PageTitle>
      <NewBatch onCreated={() => queryClient.invalidateQueries({ queryKey: ['batches'] })} />
      <h2 className="mb-3 mt-8 text-lg font-semibold">Your batches</h2>
      {batches.isPending && <Loading what="Loading your batches" />}
      <ErrorNotice error={batches.error} />
      {batches.isSuccess && list.length === 0 && <Empty>No batches yet. Upload a JSONL file above.</Empty>}
      <ol className="flex flex-col gap-4" data-testid="batches">
        {list.map((batch) => (
          <BatchRow key={batch.id} batch={batch} />
        ))}
      </ol>
    </>
  )
}

function NewBatch({ onCreated }: { onCreated: () => void }) {
  const fileInput = useRef<HTMLInputElement>(null)
  const [endpoint, setEndpoint] = useState<(typeof ENDPOINTS)[number]>('/v1/embeddings')
  const create = useMutation({
    mutationFn: async () => {
      const file = fileInput.current?.files?.[0]
      if (!file) throw new Error('Choose a JSONL file first.')
      const uploaded = await call(postV1Files({ body: { file, purpose: 'batch' } }))
      return call(postV1Batches({ body: { input_file_id: uploaded.id!, endpoint, completion_window: '24h' } }))
    },
    onSuccess: () => {
      if (fileInput.current) fileInput.current.value = ''
      onCreated()
    },
  })
  return (
    <Card title="New batch">
      <p className="mb-3 text-sm text-slate-600">
        One request per line, for example: <code className="break-all text-xs">{EXAMPLE}</code>. Lines draw on your daily batch quota, not your per-minute limit.
      </p>
      <form
        className="flex flex-wrap items-end gap-3"
        onSubmit={(event) => {
          event.preventDefault()
          create.mutate()
        }}
      >
        <label className="flex flex-col gap-1 text-sm font-medium">
          Requests file (.jsonl)
          <input ref={fileInput} type="file" name="file" accept=".jsonl,.json,.txt,application/jsonl" className="text-sm" required />
        </label>
        <label className="flex flex-col gap-1 text-sm font-medium">
          Endpoint
          <select className="rounded border border-slate-300 px-2 py-1.5" value={endpoint} onChange={(event) => setEndpoint(event.target.value as (typeof ENDPOINTS)[number])}>
            {ENDPOINTS.map((choice) => (
              <option key={choice}>{choice}</option>
            ))}
          </select>
        </label>
        <Button type="submit" disabled={create.isPending}>{create.isPending ? 'Uploading…' : 'Start batch'}</Button>
      </form>
      <ErrorNotice error={create.error} fields />
    </Card>
  )
}

function BatchRow({ batch }: { batch: BatchOut }) {
  const queryClient = useQueryClient()
  const cancel = useMutation({
    mutationFn: () => call(postV1BatchesByBatchIdCancel({ path: { batch_id: batch.id! } })),
    onSuccess: () => queryClient.invalidateQueries({ queryKey: ['batches'] }),
  })
  const download = useMutation({
    mutationFn: async ({ fileId, name }: { fileId: string; name: string }) => {
      const text = await call(getV1FilesByFileIdContent({ path: { file_id: fileId }, parseAs: 'text' }))
      const link = document.createElement('a')
      link.href = URL.createObjectURL(new Blob([text as unknown as string], { type: 'application/jsonl' }))
      link.download = name
      link.click()
      URL.revokeObjectURL(link.href)
    },
  })
  const { done, total, percent } = progress(batch)
  const counts = batch.request_counts ?? {}
  return (
    <li className="rounded-lg border border-slate-200 bg-white p-4" data-batch-id={batch.id} data-status={batch.status}>
      <article aria-label={`Batch ${batch.id}`}>
        <header className="mb-2 flex flex-wrap items-center justify-between gap-2 text-sm">
          <span className="font-mono text-xs">{batch.id}</span>
          <span className="text-slate-600">{batch.endpoint} · {at(batch.created_at)}</span>
          <span className="rounded bg-slate-100 px-2 py-0.5 font-medium" data-testid="batch-status">{batch.status}</span>
        </header>
        <div
          role="progressbar"
          aria-label={`Progress of batch ${batch.id}`}
          aria-valuemin={0}
          aria-valuemax={100}
          aria-valuenow={percent}
          aria-valuetext={`${done} of ${total} requests`}
          className="h-2 w-full overflow-hidden rounded bg-slate-200"
        >
          <div className="h-full bg-indigo-600 transition-all" style={{ width: `${percent}%` }} />
        </div>
        <p className="mt-2 text-sm text-slate-600" data-testid="batch-counts">
          {done} of {total} requests · {counts.completed ?? 0} done · {counts.failed ?? 0} failed
        </p>
        {problems(batch).length > 0 && (
          <ul className="mt-2 list-disc pl-5 text-sm text-red-700" aria-label="Why the batch failed">
            {problems(batch).map((problem, index) => (
              <li key={index}>{problem.line ? `Line ${problem.line}: ` : ''}{problem.message} ({problem.code})</li>
            ))}
          </ul>
        )}
        <div className="mt-3 flex flex-wrap gap-2">
          {canCancel(batch) && (
            <Button variant="secondary" onClick={() => cancel.mutate()} disabled={cancel.isPending}>Cancel</Button>
          )}
          {batch.output_file_id && (
            <Button variant="secondary" onClick={() => download.mutate({ fileId: batch.output_file_id!, name: `${batch.id}_output.jsonl` })}>Download output</Button>
          )}
          {batch.error_file_id && (
            <Button variant="secondary" onClick={() => download.mutate({ fileId: batch.error_file_id!, name: `${batch.id}_errors.jsonl` })}>Download errors</Button>
          )}
        </div>
        <ErrorNotice error={cancel.error} />
        <ErrorNotice error={download.error} />
      </article>
    </li>
  )
}

import { useInfiniteQuery, useMutation, useQuery, useQueryClient } from '@tanstack/react-query'

import { deleteV1HistoryByEntryId, getV1History, getV1Tokens } from '../client/sdk.gen'
import { Button, Empty, ErrorNotice, Loading, PageTitle } from '../components/ui'
import { call } from '../lib/api'
import { when } from '../lib/format'
import { historySource } from '../lib/usage'

const PAGE = 20

export function HistoryPage() {
  const queryClient = useQueryClient()
  const history = useInfiniteQuery({
    queryKey: ['history'],
    initialPageParam: undefined as number | undefined,
    queryFn: ({ pageParam }) => call(getV1History({ query: { limit: PAGE, before: pageParam } })),
    getNextPageParam: (last) => (last.data && last.data.length === PAGE ? last.data[last.data.length - 1].id : undefined),
  })
  const remove = useMutation({
    mutationFn: (id: number) => call(deleteV1HistoryByEntryId({ path: { entry_id: id } })),
    onSuccess: () => queryClient.invalidateQueries({ queryKey: ['history'] }),
  })
  const tokens = useQuery({ queryKey: ['tokens'], queryFn: () => call(getV1Tokens()) })
  const names = new Map((tokens.data?.data ?? []).map((token) => [token.id!, token.name ?? '']))
  const entries = history.data?.pages.flatMap((page) => page.data ?? []) ?? []
  return (
    <>
      <PageTitle>History</PageTitle>
      {history.isPending && <Loading what="Loading your stories" />}
      <ErrorNotice error={history.error} />
      <ErrorNotice error={remove.error} />
      {history.isSuccess && entries.length === 0 && <Empty>No stories yet. Ask the storyteller in the playground.</Empty>}
      <ol className="flex flex-col gap-4" data-testid="history">
        {entries.map((entry) => (
          <li key={entry.id} className="rounded-lg border border-slate-200 bg-white p-4">
            <article aria-label={`Story from ${when(entry.created_at)}`}>
              <header className="mb-2 flex flex-wrap items-center justify-between gap-2 text-sm text-slate-600">
                <span>{when(entry.created_at)} · from {historySource(entry.token_id, names)} · {entry.model} · {entry.completion_tokens} tokens · {entry.finish_reason}</span>
                <Button variant="secondary" onClick={() => remove.mutate(entry.id!)} aria-label={`Delete the story from ${when(entry.created_at)}`}>Delete</Button>
              </header>
              <p className="text-sm font-medium">{entry.prompt}</p>
              <p className="mt-2 whitespace-pre-wrap font-serif text-sm">{entry.completion}</p>
            </article>
          </li>
        ))}
      </ol>
      {history.hasNextPage && (
        <Button className="mt-4" variant="secondary" onClick={() => history.fetchNextPage()} disabled={history.isFetchingNextPage}>Load older</Button>
      )}
    </>
  )
}

import { useQuery } from '@tanstack/react-query'
import { useState } from 'react'

import { getV1Models } from '../client/sdk.gen'
import { call } from '../lib/api'
import { predictQuickstart, quickstart } from '../lib/quickstart'
import { CopyButton, cx } from './ui'

const LANGUAGES = [
  ['curl', 'curl'],
  ['python', 'Python (openai)'],
  ['node', 'Node (openai)'],
] as const

/** Base URL, model ids, and a first call to copy; `token` fills it in (shown once). */
export function Quickstart({ token }: { token?: string }) {
  const models = useQuery({ queryKey: ['models'], queryFn: () => call(getV1Models()) })
  const [language, setLanguage] = useState<(typeof LANGUAGES)[number][0]>('curl')
  const base = window.location.origin
  const list = models.data?.data ?? []
  const snippets = quickstart(base, list, token)
  const predict = predictQuickstart(base, list, token)
  return (
    <div className="flex flex-col gap-3 text-sm" data-testid="quickstart">
      <dl className="grid grid-cols-[auto_1fr] items-center gap-x-3 gap-y-1">
        <dt className="font-medium">Base URL</dt>
        <dd className="flex items-center gap-2"><code data-testid="base-url" className="break-all">{base}/v1</code></dd>
        <dt className="font-medium">Models</dt>
        <dd data-testid="model-ids" className="flex flex-wrap gap-2">
          {list.map((model) => <code key={model.id} className="rounded bg-slate-100 px-1">{model.id}</code>)}
        </dd>
      </dl>
      <div role="group" aria-label="Language" className="flex flex-wrap gap-1">
        {LANGUAGES.map(([key, label]) => (
          <button key={key} type="button" aria-pressed={language === key} onClick={() => setLanguage(key)} className={cx('rounded-md border px-2 py-1 text-xs', language === key ? 'border-indigo-600 bg-indigo-50 text-indigo-800' : 'border-slate-300')}>
            {label}
          </button>
        ))}
      </div>
      <pre tabIndex={0} aria-label={`${language} example`} data-testid="snippet" className="whitespace-pre-wrap break-all rounded bg-slate-900 p-3 text-xs text-slate-100">{snippets[language]}</pre>
      <div className="flex flex-wrap items-center gap-3">
        <CopyButton value={snippets[language]} label={`Copy ${LANGUAGES.find(([key]) => key === language)![1].split(' ')[0]}`} />
        <a href="/docs" className="text-indigo-700 underline">API reference (/docs)</a>
        {!token && <span className="text-slate-600">Set <code>MODELGATE_TOKEN</code> to one of your tokens first.</span>}
      </div>
      {predict && (
        <div className="flex flex-col gap-2">
          <p>Your own models answer <code>POST /v1/models/&#123;id&#125;/predict</code>, with a token that has the <code>predict</code> scope:</p>
          <pre tabIndex={0} aria-label="predict example" data-testid="predict-snippet" className="whitespace-pre-wrap break-all rounded bg-slate-900 p-3 text-xs text-slate-100">{predict}</pre>
          <div><CopyButton value={predict} label="Copy predict curl" /></div>
        </div>
      )}
    </div>
  )
}

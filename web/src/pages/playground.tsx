import { useMutation, useQuery, useQueryClient } from '@tanstack/react-query'
import { useRef, useState } from 'react'

import { getV1Models, postV1Embeddings } from '../client/sdk.gen'
import type { ModelOut } from '../client/types.gen'
import { HandlerPlayground } from '../components/predict'
import { Button, Card, CopyButton, ErrorNotice, PageTitle } from '../components/ui'
import { call } from '../lib/api'
import { HEAT_GRADIENT, heat, modelsFor, STORY_START, storyText } from '../lib/playground'
import { snippets, streamResponse } from '../lib/responses'
import { similarity } from '../lib/stream'

const BASE = typeof window === 'undefined' ? '' : window.location.origin

function NumberInput({ label, value, onChange, min, max, step }: { label: string; value: number; onChange: (value: number) => void; min: number; max: number; step: number }) {
  const id = `param-${label.replaceAll(' ', '-')}`
  return (
    <div className="flex flex-col gap-1">
      <label htmlFor={id} className="text-sm font-medium">{label}</label>
      <input id={id} type="number" className="w-28 rounded-md border border-slate-300 px-2 py-1 text-sm" value={value} min={min} max={max} step={step} onChange={(event) => onChange(Number(event.target.value))} />
    </div>
  )
}

function ModelPicker({ id, models, value, onChange }: { id: string; models: string[]; value: string; onChange: (model: string) => void }) {
  return (
    <div className="flex flex-col gap-1">
      <label htmlFor={id} className="text-sm font-medium">Model</label>
      <select id={id} className="rounded-md border border-slate-300 px-2 py-1 text-sm" value={value} onChange={(event) => onChange(event.target.value)}>
        {models.map((model) => <option key={model} value={model}>{model}</option>)}
      </select>
    </div>
  )
}

type Said = { prompt: string; text: string }

function Storyteller() {
  const queryClient = useQueryClient()
  const [prompt, setPrompt] = useState(STORY_START)
  const [maxTokens, setMaxTokens] = useState(120)
  const [temperature, setTemperature] = useState(0.8)
  const [topP, setTopP] = useState(0.95)
  // The conversation: earlier turns as shown, and the last kept response's id, which
  // the next turn sends as `previous_response_id` (the server holds the turns).
  const [earlier, setEarlier] = useState<Said[]>([])
  const [previousId, setPreviousId] = useState<string | null>(null)
  const [text, setText] = useState('')
  const [begun, setBegun] = useState('')
  const [state, setState] = useState<'idle' | 'streaming' | 'stopped' | 'done'>('idle')
  const [error, setError] = useState<unknown>(null)
  const controller = useRef<AbortController | null>(null)
  const models = useQuery({ queryKey: ['models'], queryFn: () => call(getV1Models()) })
  const choices = modelsFor(models.data?.data ?? [], 'text-generation')
  const [picked, setPicked] = useState<string | null>(null)
  const model = picked ?? choices[0] ?? 'storyteller'
  const turn = { model, input: prompt, maxOutputTokens: maxTokens, temperature, topP, previousId }
  const { curl, python } = snippets(BASE, turn)

  async function start() {
    controller.current = new AbortController()
    // The last turn joins the conversation only if the server kept it (not stopped, not failed).
    if (state === 'done') setEarlier((said) => [...said, { prompt: begun, text }])
    setText('')
    setBegun(prompt)
    setError(null)
    setState('streaming')
    try {
      const ended = await streamResponse(turn, setText, controller.current.signal)
      setPreviousId(ended.id)
      setPrompt('')
      setState('done')
    } catch (caught) {
      if ((caught as Error).name === 'AbortError') setState('stopped')
      else {
        setError(caught)
        setState('idle')
      }
    } finally {
      queryClient.invalidateQueries({ queryKey: ['history'] })
    }
  }

  function restart() {
    setEarlier([])
    setPreviousId(null)
    setText('')
    setBegun('')
    setError(null)
    setState('idle')
    setPrompt(STORY_START)
  }

  return (
    <Card title="Storyteller (chat, streamed)">
      <div className="flex flex-col gap-3">
        <p className="text-sm text-slate-600">The storyteller is a small language model: it continues the text you start, it does not follow instructions. Each turn continues the conversation so far.</p>
        <label htmlFor="prompt" className="text-sm font-medium">{previousId ? 'The story goes on' : 'The story begins'}</label>
        <textarea id="prompt" rows={3} maxLength={4000} className="rounded-md border border-slate-300 p-2 text-sm" value={prompt} onChange={(event) => setPrompt(event.target.value)} />
        <div className="flex flex-wrap gap-4">
          <ModelPicker id="story-model" models={choices.length ? choices : [model]} value={model} onChange={setPicked} />
          <NumberInput label="Max tokens" value={maxTokens} onChange={setMaxTokens} min={1} max={256} step={1} />
          <NumberInput label="Temperature" value={temperature} onChange={setTemperature} min={0} max={2} step={0.1} />
          <NumberInput label="Top p" value={topP} onChange={setTopP} min={0.01} max={1} step={0.05} />
        </div>
        <div className="flex flex-wrap gap-2">
          <Button onClick={start} disabled={state === 'streaming' || !prompt.trim()}>Tell the story</Button>
          <Button variant="secondary" onClick={() => controller.current?.abort()} disabled={state !== 'streaming'}>Stop</Button>
          <Button variant="secondary" onClick={restart} disabled={state === 'streaming' || (!previousId && state === 'idle')}>New conversation</Button>
        </div>
        <ErrorNotice error={error} fields />
        <div aria-live="polite" aria-busy={state === 'streaming'} className="min-h-24 whitespace-pre-wrap rounded-md bg-slate-100 p-3 font-serif text-sm">
          {/* The model continues the text it was given: shown first, in grey, then what it wrote. */}
          {earlier.map((said, index) => (
            <p key={index} className="mb-2"><span className="text-slate-600">{said.prompt}{'\n'}</span>{storyText(said.text)}</p>
          ))}
          {state !== 'idle' && <span className="text-slate-600">{begun}{storyText(text) !== text ? '\n' : ''}</span>}
          <span data-testid="story" data-state={state}>{storyText(text) || (state === 'idle' ? 'The story appears here as it is written.' : '')}</span>
        </div>
        {state === 'stopped' && <p role="status" className="text-sm text-slate-600">Stopped: this turn is not kept in the conversation.</p>}
        {previousId && <p className="text-xs text-slate-600">Continues response <code data-testid="previous-response">{previousId}</code></p>}
        <details>
          <summary className="cursor-pointer text-sm font-medium">This request as curl and Python</summary>
          <div className="mt-2 flex flex-col gap-2">
            <pre tabIndex={0} aria-label="curl command" className="whitespace-pre-wrap break-all rounded bg-slate-900 p-3 text-xs text-slate-100">{curl}</pre>
            <div><CopyButton value={curl} label="Copy curl" /></div>
            <pre tabIndex={0} aria-label="Python code" className="whitespace-pre-wrap break-all rounded bg-slate-900 p-3 text-xs text-slate-100">{python}</pre>
            <div><CopyButton value={python} label="Copy Python" /></div>
          </div>
        </details>
      </div>
    </Card>
  )
}

function HeatLegend() {
  return (
    <div className="mt-2 flex items-center gap-2 text-xs text-slate-700" data-testid="heat-legend">
      <span>0 or less: unrelated</span>
      <span aria-hidden="true" className="h-3 w-32 rounded border border-slate-300" style={{ background: HEAT_GRADIENT }} />
      <span>1: same meaning</span>
    </div>
  )
}

function Embeddings() {
  const [input, setInput] = useState('The frog jumped into the well.\nA toad leapt into the pond.\nInterest rates rose again.')
  const models = useQuery({ queryKey: ['models'], queryFn: () => call(getV1Models()) })
  const choices = modelsFor(models.data?.data ?? [], 'embedding')
  const [picked, setPicked] = useState<string | null>(null)
  const model = picked ?? choices[0]
  const embed = useMutation({
    mutationFn: (sentences: string[]) => call(postV1Embeddings({ body: { input: sentences, ...(model ? { model } : {}) } })),
  })
  const sentences = input.split('\n').map((line) => line.trim()).filter(Boolean)
  const vectors = embed.data?.data?.map((item) => item.embedding as number[]) ?? []
  const matrix = similarity(vectors)
  const shown = embed.variables ?? []
  return (
    <Card title="Embeddings: how alike are your sentences?">
      <div className="flex flex-col gap-3">
        <label htmlFor="sentences" className="text-sm font-medium">One sentence per line (up to 16)</label>
        <textarea id="sentences" rows={4} className="rounded-md border border-slate-300 p-2 text-sm" value={input} onChange={(event) => setInput(event.target.value)} />
        <div className="flex flex-wrap items-end gap-4">
          {model && <ModelPicker id="embedding-model" models={choices} value={model} onChange={setPicked} />}
          <Button onClick={() => embed.mutate(sentences.slice(0, 16))} disabled={sentences.length === 0 || embed.isPending}>Compare</Button>
        </div>
        <ErrorNotice error={embed.error} fields />
        {matrix.length > 0 && (
          <div className="overflow-x-auto">
            <table data-testid="heatmap" className="border-collapse text-xs">
              <caption className="mb-2 text-left text-sm text-slate-600">Cosine similarity ({embed.data?.model}, {embed.data?.usage?.prompt_tokens} tokens)</caption>
              <thead>
                <tr>
                  <td />
                  {shown.map((_, column) => <th scope="col" key={column} className="px-2">#{column + 1}</th>)}
                </tr>
              </thead>
              <tbody>
                {matrix.map((row, index) => (
                  <tr key={index}>
                    <th scope="row" className="max-w-64 truncate pr-2 text-left font-normal" title={shown[index]}>#{index + 1} {shown[index]}</th>
                    {row.map((value, column) => (
                      <td key={column} className="h-10 w-12 text-center font-mono" style={heat(value)} aria-label={`#${index + 1} and #${column + 1}: ${value.toFixed(2)}`}>
                        {value.toFixed(2)}
                      </td>
                    ))}
                  </tr>
                ))}
              </tbody>
            </table>
            <HeatLegend />
          </div>
        )}
      </div>
    </Card>
  )
}

const TASKS: Record<string, string> = { embedding: 'embeddings', 'text-generation': 'text generation', handler: 'your model (predict)' }

/** Every model this server serves, with what it does. */
function ModelList({ models }: { models: ModelOut[] }) {
  return (
    <Card title="Models on this server">
      <ul data-testid="model-list" className="flex flex-wrap gap-2 text-sm">
        {models.map((model) => (
          <li key={model.id} className="rounded border border-slate-200 px-2 py-1">
            <code>{model.id}</code> <span className="text-slate-600">· {TASKS[model.task ?? ''] ?? model.task}</span>
          </li>
        ))}
      </ul>
    </Card>
  )
}

export function PlaygroundPage() {
  const models = useQuery({ queryKey: ['models'], queryFn: () => call(getV1Models()) })
  const list = models.data?.data ?? []
  return (
    <>
      <PageTitle>Playground</PageTitle>
      <div className="grid grid-cols-1 gap-6 lg:grid-cols-2">
        <div className="lg:col-span-2"><ModelList models={list} /></div>
        <Storyteller />
        <Embeddings />
        <div className="lg:col-span-2" data-testid="handler-playground"><HandlerPlayground models={list} /></div>
      </div>
    </>
  )
}

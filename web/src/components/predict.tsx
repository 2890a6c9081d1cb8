/**
 * The playground's card for handler models: a form built from the model's declared inputs
 * (images by picker or drag and drop, with a preview), `POST /v1/models/{id}/predict` as
 * multipart/form-data with the session, the outputs (text lines boxed over the image), and
 * the same request as curl and Python.
 */
import { useMutation } from '@tanstack/react-query'
import { useEffect, useMemo, useRef, useState, type DragEvent } from 'react'

import type { ModelOut, PredictOut } from '../client/types.gen'
import { apiFetch, session } from '../lib/api'
import { toApiError } from '../lib/errors'
import {
  declarationOf,
  formFields,
  formParts,
  formProblems,
  initialValues,
  polygonPoints,
  predictSnippets,
  scaleBox,
  shownOutputs,
  toFormData,
  type BoxedLine,
  type Declaration,
  type FormField,
  type Picked,
  type Value,
  type Values,
} from '../lib/handlers'
import { Button, Card, CopyButton, cx, Empty, ErrorNotice } from './ui'

const BASE = typeof window === 'undefined' ? '' : window.location.origin
const INPUT = 'rounded-md border px-2 py-1 text-sm'

type Parts = ReturnType<typeof formParts>

async function predict(model: string, parts: Parts): Promise<PredictOut> {
  const response = await apiFetch(`/v1/models/${encodeURIComponent(model)}/predict`, {
    method: 'POST',
    headers: { Authorization: `Bearer ${session.token()}` },
    body: toFormData(parts),
  })
  const body = await response.json().catch(() => null)
  if (!response.ok) throw toApiError(response, body)
  return body as PredictOut
}

function readPicked(file: File): Promise<Picked> {
  // A data: URL, not a blob: one: the app's Content-Security-Policy allows only data: images.
  return new Promise((resolve, reject) => {
    const reader = new FileReader()
    reader.onload = () => resolve({ file, name: file.name, preview: String(reader.result) })
    reader.onerror = () => reject(reader.error)
    reader.readAsDataURL(file)
  })
}

function ImageInput({ field, id, value, onChange, problem }: { field: FormField; id: string; value: Value; onChange: (value: Picked) => void; problem?: string }) {
  const [over, setOver] = useState(false)
  const input = useRef<HTMLInputElement>(null)
  const picked = typeof value === 'object' ? value : null
  const take = (file: File | undefined) => {
    if (file) readPicked(file).then(onChange)
  }
  const onDrop = (event: DragEvent) => {
    event.preventDefault()
    setOver(false)
    // The picker shows the dropped file's name, not the one picked before.
    if (input.current && event.dataTransfer.files instanceof FileList && event.dataTransfer.files.length) input.current.files = event.dataTransfer.files
    take(event.dataTransfer.files[0])
  }
  return (
    <div
      data-testid={`drop-${field.name}`}
      onDragOver={(event) => {
        event.preventDefault()
        setOver(true)
      }}
      onDragLeave={() => setOver(false)}
      onDrop={onDrop}
      className={cx('flex flex-col gap-2 rounded-md border-2 border-dashed p-3', over ? 'border-indigo-600 bg-indigo-50' : problem ? 'border-red-600' : 'border-slate-300')}
    >
      <input ref={input} id={id} type="file" accept={field.accept} aria-invalid={problem ? true : undefined} aria-describedby={`${id}-hint${problem ? ` ${id}-error` : ''}`} className="text-sm" onChange={(event) => take(event.target.files?.[0])} />
      <p className="text-xs text-slate-600">…or drop an image here.</p>
      {picked && (picked.preview.startsWith('data:image/') ? (
        <img src={picked.preview} alt={`Preview of ${picked.name}`} data-testid={`preview-${field.name}`} className="max-h-48 max-w-full self-start rounded border border-slate-200 object-contain" />
      ) : (
        <p className="text-sm text-slate-700">{picked.name}: no preview (the browser does not take it for an image).</p>
      ))}
    </div>
  )
}

function Control({ field, value, onChange, problem }: { field: FormField; value: Value; onChange: (value: Value) => void; problem?: string }) {
  const id = `predict-${field.name}`
  const described = `${id}-hint${problem ? ` ${id}-error` : ''}`
  const look = cx(INPUT, problem ? 'border-red-600' : 'border-slate-300')
  const text = typeof value === 'string' ? value : ''
  let control
  if (field.control === 'image') control = <ImageInput field={field} id={id} value={value} onChange={onChange} problem={problem} />
  else if (field.control === 'checkbox') control = <input id={id} type="checkbox" className="h-4 w-4 self-start" checked={value === true} aria-describedby={described} onChange={(event) => onChange(event.target.checked)} />
  else if (field.control === 'number') control = <input id={id} type="number" className={cx(look, 'w-36')} value={text} min={field.min} max={field.max} step={field.step} aria-invalid={problem ? true : undefined} aria-describedby={described} onChange={(event) => onChange(event.target.value)} />
  else if (field.control === 'text') control = <input id={id} type="text" className={look} value={text} maxLength={field.maxLength} aria-invalid={problem ? true : undefined} aria-describedby={described} onChange={(event) => onChange(event.target.value)} />
  else control = <textarea id={id} rows={field.control === 'json' ? 4 : 3} className={cx(look, field.control === 'json' && 'font-mono')} value={text} maxLength={field.maxLength} aria-invalid={problem ? true : undefined} aria-describedby={described} onChange={(event) => onChange(event.target.value)} />
  return (
    <div className="flex flex-col gap-1">
      <label htmlFor={id} className="text-sm font-medium">
        {field.name} <span className="font-normal text-slate-600">({field.kind}{field.required ? '' : ', optional'})</span>
      </label>
      {control}
      <p id={`${id}-hint`} className="text-xs text-slate-600">{field.hint}</p>
      {problem && <p id={`${id}-error`} className="text-sm text-red-700">{problem}</p>}
    </div>
  )
}

/** The image with its text lines' boxes drawn over it, scaled to the size it is shown at. */
function BoxedImage({ src, lines }: { src: string; lines: BoxedLine[] }) {
  const image = useRef<HTMLImageElement>(null)
  const [natural, setNatural] = useState({ width: 0, height: 0 })
  const [shown, setShown] = useState({ width: 0, height: 0 })
  const [active, setActive] = useState<number | null>(null)
  useEffect(() => {
    const node = image.current
    if (!node) return
    const observer = new ResizeObserver(() => setShown({ width: node.clientWidth, height: node.clientHeight }))
    observer.observe(node)
    return () => observer.disconnect()
  }, [])
  const measured = natural.width > 0 && shown.width > 0
  return (
    <div className="grid gap-3 md:grid-cols-2">
      <div className="relative self-start">
        <img
          ref={image}
          src={src}
          alt="The image read, with each text line boxed"
          className="block h-auto max-w-full rounded border border-slate-200"
          onLoad={(event) => {
            const node = event.currentTarget
            setNatural({ width: node.naturalWidth, height: node.naturalHeight })
            setShown({ width: node.clientWidth, height: node.clientHeight })
          }}
        />
        {measured && (
          <svg data-testid="line-boxes" aria-hidden="true" className="pointer-events-none absolute left-0 top-0" width={shown.width} height={shown.height}>
            {lines.map((line, index) => (
              <polygon key={index} data-testid="line-box" points={polygonPoints(scaleBox(line.box, natural, shown))} fill={active === index ? 'rgba(79, 70, 229, 0.25)' : 'rgba(79, 70, 229, 0.08)'} stroke="#4f46e5" strokeWidth={active === index ? 3 : 2} />
            ))}
          </svg>
        )}
      </div>
      <ol data-testid="recognised-lines" className="flex list-inside list-decimal flex-col gap-1 text-sm">
        {lines.map((line, index) => (
          <li key={index} onMouseEnter={() => setActive(index)} onMouseLeave={() => setActive(null)} className={cx('rounded px-1', active === index && 'bg-indigo-50')}>
            <span data-testid="line-text" className="font-mono">{line.text}</span>
            {line.confidence !== null && <span className="text-xs text-slate-600"> · {(line.confidence * 100).toFixed(1)} %</span>}
          </li>
        ))}
      </ol>
    </div>
  )
}

function Result({ declaration, answer, image }: { declaration: Declaration; answer: PredictOut; image: string | null }) {
  const shown = shownOutputs(declaration, (answer.outputs ?? {}) as Record<string, unknown>)
  return (
    <div data-testid="predict-result" className="flex flex-col gap-3">
      {shown.map((output) => (
        <section key={output.name} aria-label={`Output ${output.name}`} className="flex flex-col gap-1">
          <h3 className="text-sm font-medium">{output.name}</h3>
          {output.kind === 'lines' && (image ? <BoxedImage src={image} lines={output.lines} /> : <pre className="whitespace-pre-wrap break-all rounded bg-slate-100 p-2 text-xs">{JSON.stringify(output.lines, null, 2)}</pre>)}
          {output.kind === 'image' && <img src={output.src} alt={`Output ${output.name}`} className="max-w-full self-start rounded border border-slate-200" />}
          {output.kind === 'text' && <pre data-testid={`output-${output.name}`} tabIndex={0} className="max-h-80 overflow-auto whitespace-pre-wrap break-all rounded bg-slate-100 p-2 text-xs">{output.text}</pre>}
        </section>
      ))}
      <p className="text-xs text-slate-600">
        Metered: {answer.usage?.units} (unit: {answer.usage?.unit}) · trace id <code>{answer.trace_id}</code>
      </p>
    </div>
  )
}

function PredictForm({ model, declaration }: { model: string; declaration: Declaration }) {
  const fields = useMemo(() => formFields(declaration), [declaration])
  const [values, setValues] = useState<Values>(() => initialValues(declaration))
  const [problems, setProblems] = useState<Record<string, string>>({})
  const run = useMutation({ mutationFn: (parts: Parts) => predict(model, parts) })
  const { curl, python } = predictSnippets(BASE, model, fields, values)
  const sentImage = run.variables?.find(([, value]) => typeof value !== 'string')?.[1] as Picked | undefined
  const set = (name: string, value: Value) => {
    setValues((current) => ({ ...current, [name]: value }))
    setProblems((current) => ({ ...current, [name]: '' }))
  }
  const submit = () => {
    const found = formProblems(fields, values)
    setProblems(found)
    if (Object.keys(found).length === 0) run.mutate(formParts(fields, values))
  }
  return (
    <form className="flex flex-col gap-3" noValidate onSubmit={(event) => { event.preventDefault(); submit() }}>
      {fields.map((field) => <Control key={field.name} field={field} value={values[field.name]} onChange={(value) => set(field.name, value)} problem={problems[field.name] || undefined} />)}
      <div><Button type="submit" disabled={run.isPending}>{run.isPending ? 'Running…' : 'Run the model'}</Button></div>
      <ErrorNotice error={run.error} fields />
      <div aria-live="polite" aria-busy={run.isPending}>
        {run.data && !run.isPending && <Result declaration={declaration} answer={run.data} image={sentImage?.preview ?? null} />}
      </div>
      <details>
        <summary className="cursor-pointer text-sm font-medium">This prediction as curl and Python</summary>
        <div className="mt-2 flex flex-col gap-2">
          <pre tabIndex={0} aria-label="Predict request as curl" className="whitespace-pre-wrap break-all rounded bg-slate-900 p-3 text-xs text-slate-100">{curl}</pre>
          <div><CopyButton value={curl} label="Copy curl" /></div>
          <pre tabIndex={0} aria-label="Predict request in Python" className="whitespace-pre-wrap break-all rounded bg-slate-900 p-3 text-xs text-slate-100">{python}</pre>
          <div><CopyButton value={python} label="Copy Python" /></div>
          <p className="text-xs text-slate-600">An API token needs the <code>predict</code> scope.</p>
        </div>
      </details>
    </form>
  )
}

/** Every handler model in a picker, and the form of the one picked. */
export function HandlerPlayground({ models }: { models: ModelOut[] }) {
  const handlers = models.filter((model) => declarationOf(model) && model.id)
  const [picked, setPicked] = useState<string | null>(null)
  const model = handlers.find((candidate) => candidate.id === picked) ?? handlers[0]
  const declaration = declarationOf(model)
  return (
    <Card title="Your models (handlers)">
      {!model || !declaration ? (
        <Empty>No handler model is being served. docs/models.md says how to serve your own PyTorch model with one file and one line of configuration.</Empty>
      ) : (
        <div className="flex flex-col gap-3">
          <div className="flex flex-col gap-1">
            <label htmlFor="handler-model" className="text-sm font-medium">Model</label>
            <select id="handler-model" className="self-start rounded-md border border-slate-300 px-2 py-1 text-sm" value={model.id} onChange={(event) => setPicked(event.target.value)}>
              {handlers.map((candidate) => <option key={candidate.id} value={candidate.id}>{candidate.id}</option>)}
            </select>
            <p className="text-xs text-slate-600">Metered in {declaration.units ?? 'items'}; runs on {model.device ?? 'cpu'}.</p>
          </div>
          <PredictForm key={model.id} model={model.id!} declaration={declaration} />
        </div>
      )}
    </Card>
  )
}

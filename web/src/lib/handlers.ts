/**
 * The playground's handler models (`task: "handler"`): the form built from a model's declared
 * inputs, the multipart body it sends to `POST /v1/models/{id}/predict`, the same request as
 * curl and Python, and the results read back (text lines with boxes drawn over the image).
 * Pure: the page (pages/handlers.tsx) holds the state and the DOM.
 */

export type Declared = {
  name: string
  kind: 'text' | 'image' | 'number' | 'boolean' | 'json' | 'tensor' | string
  required?: boolean
  default?: unknown
  description?: string
  minimum?: number | null
  maximum?: number | null
  integer?: boolean
  max_length?: number
  max_bytes?: number
  max_pixels?: number
  formats?: string[]
  dtype?: string
  shape?: number[]
}

export type Declaration = { inputs: Declared[]; outputs: Declared[]; units?: string; max_batch_size?: number }

export type Control = 'image' | 'text' | 'textarea' | 'number' | 'checkbox' | 'json'

/** One control of the form, with what the browser can check before sending. */
export type FormField = {
  name: string
  kind: string
  control: Control
  required: boolean
  hint: string
  min?: number
  max?: number
  step?: number | 'any'
  maxLength?: number
  accept?: string
  maxBytes?: number
}

/** A picked file as the form keeps it: its name and bytes, and a data: URL for the preview. */
export type Picked = { file: Blob; name: string; preview: string }
export type Value = string | boolean | Picked | null
export type Values = Record<string, Value>

const MIME: Record<string, string> = { png: 'image/png', jpeg: 'image/jpeg', jpg: 'image/jpeg', webp: 'image/webp', gif: 'image/gif', bmp: 'image/bmp', tiff: 'image/tiff' }

/** The schema of a listed model, if it is a handler model with one. */
export function declarationOf(model: { task?: string; schema?: Record<string, unknown> } | undefined): Declaration | null {
  const schema = model?.task === 'handler' ? model.schema : undefined
  if (!schema || !Array.isArray(schema.inputs) || !Array.isArray(schema.outputs)) return null
  return schema as unknown as Declaration
}

function megabytes(bytes: number): string {
  return bytes >= 1_000_000 ? `${+(bytes / 1_000_000).toFixed(1)} MB` : `${Math.ceil(bytes / 1000)} kB`
}

function hintOf(input: Declared): string {
  const parts = input.description ? [input.description] : []
  if (input.kind === 'image') {
    if (input.formats?.length) parts.push(input.formats.map((format) => format.toUpperCase()).join(', '))
    if (input.max_bytes) parts.push(`up to ${megabytes(input.max_bytes)}`)
    if (input.max_pixels) parts.push(`${+(input.max_pixels / 1_000_000).toFixed(1)} megapixels`)
  }
  if (input.kind === 'number') {
    const low = input.minimum ?? null
    const high = input.maximum ?? null
    if (low !== null && high !== null) parts.push(`from ${low} to ${high}`)
    else if (low !== null) parts.push(`at least ${low}`)
    else if (high !== null) parts.push(`at most ${high}`)
    if (input.integer) parts.push('a whole number')
  }
  if (input.kind === 'tensor') parts.push(`${input.dtype ?? 'float32'} of shape [${(input.shape ?? []).join(', ')}] as nested lists`)
  if (input.kind === 'json') parts.push('a JSON object')
  if (!input.required) parts.push('optional')
  return parts.join(' · ')
}

/** The form's controls, one per declared input, in the declared order. */
export function formFields(declaration: Declaration): FormField[] {
  return declaration.inputs.map((input) => {
    const base = { name: input.name, kind: input.kind, required: input.required !== false, hint: hintOf(input) }
    switch (input.kind) {
      case 'image':
        return { ...base, control: 'image', accept: (input.formats ?? ['png', 'jpeg', 'webp']).map((format) => MIME[format] ?? `image/${format}`).join(','), maxBytes: input.max_bytes }
      case 'number':
        return { ...base, control: 'number', min: input.minimum ?? undefined, max: input.maximum ?? undefined, step: input.integer ? 1 : 'any' }
      case 'boolean':
        return { ...base, control: 'checkbox' }
      case 'json':
      case 'tensor':
        return { ...base, control: 'json' }
      default:
        return { ...base, control: (input.max_length ?? 100_000) > 200 ? 'textarea' : 'text', maxLength: input.max_length }
    }
  })
}

/** The form's starting values: each input's default where it declares one. */
export function initialValues(declaration: Declaration): Values {
  const values: Values = {}
  for (const input of declaration.inputs) {
    const given = input.default
    if (input.kind === 'image') values[input.name] = null
    else if (input.kind === 'boolean') values[input.name] = given === true
    else if (given === undefined || given === null) values[input.name] = ''
    else values[input.name] = typeof given === 'string' ? given : JSON.stringify(given)
  }
  return values
}

function isPicked(value: Value): value is Picked {
  return typeof value === 'object' && value !== null
}

/** What the browser can say before sending, by field (the server checks everything again). */
export function formProblems(fields: FormField[], values: Values): Record<string, string> {
  const problems: Record<string, string> = {}
  for (const field of fields) {
    const value = values[field.name]
    const empty = value === null || value === ''
    if (empty) {
      if (field.required && field.control !== 'checkbox') problems[field.name] = field.control === 'image' ? 'Choose or drop an image.' : 'Fill this in.'
      continue
    }
    if (field.control === 'image' && isPicked(value) && field.maxBytes && value.file.size > field.maxBytes) {
      problems[field.name] = `The file is larger than ${megabytes(field.maxBytes)}.`
    }
    if (field.control === 'number') {
      const number = Number(value)
      if (!Number.isFinite(number)) problems[field.name] = 'Not a valid number.'
      else if (field.min !== undefined && number < field.min) problems[field.name] = `Must be at least ${field.min}.`
      else if (field.max !== undefined && number > field.max) problems[field.name] = `Must be at most ${field.max}.`
      else if (field.step === 1 && !Number.isInteger(number)) problems[field.name] = 'Not a valid integer.'
    }
    if (field.control === 'json') {
      try {
        JSON.parse(String(value))
      } catch {
        problems[field.name] = 'Not valid JSON.'
      }
    }
  }
  return problems
}

/** The multipart parts, in declared order: files as files, everything else as text. Empty optional fields are left out. */
export function formParts(fields: FormField[], values: Values): [string, string | Picked][] {
  const parts: [string, string | Picked][] = []
  for (const field of fields) {
    const value = values[field.name]
    if (value === null || value === '') continue
    if (typeof value === 'boolean') parts.push([field.name, value ? 'true' : 'false'])
    else if (isPicked(value)) parts.push([field.name, value])
    else parts.push([field.name, field.control === 'json' ? JSON.stringify(JSON.parse(value)) : value])
  }
  return parts
}

export function toFormData(parts: [string, string | Picked][]): FormData {
  const form = new FormData()
  for (const [name, value] of parts) {
    if (typeof value === 'string') form.append(name, value)
    else form.append(name, value.file, value.name)
  }
  return form
}

/** A word as the shell reads it: single-quoted unless it is plainly safe. */
export function shellQuote(word: string): string {
  return /^[\w@%+=:,./-]+$/.test(word) ? word : `'${word.replaceAll("'", "'\\''")}'`
}

/** The same request as curl (`-F name=@file`; `--form-string` for free text, which curl would otherwise read `@`/`<` in) and as Python (requests). */
export function predictSnippets(base: string, model: string, fields: FormField[], values: Values): { curl: string; python: string } {
  const url = `${base}/v1/models/${model}/predict`
  const filled = formParts(fields, values)
  const fileName = (field: string, value: string | Picked) => (typeof value === 'string' ? value : value.name || `${field}.png`)
  // Fields still empty show where their file or value goes.
  const shown: [FormField, string | Picked][] = fields.flatMap((field) => {
    const given = filled.find(([name]) => name === field.name)
    if (given) return [[field, given[1]] as [FormField, string | Picked]]
    if (field.control === 'image' && field.required) return [[field, { file: new Blob(), name: `${field.name}.png`, preview: '' }] as [FormField, Picked]]
    return []
  })
  const curlParts = shown.map(([field, value]) => {
    if (typeof value !== 'string') return `  -F ${shellQuote(`${field.name}=@${fileName(field.name, value)}`)}`
    const flag = field.control === 'number' || field.control === 'checkbox' ? '-F' : '--form-string'
    return `  ${flag} ${shellQuote(`${field.name}=${value}`)}`
  })
  const curl = [`curl ${url} \\`, `  -H "Authorization: Bearer $MODELGATE_TOKEN"${curlParts.length ? ' \\' : ''}`, ...curlParts.map((line, index) => (index < curlParts.length - 1 ? `${line} \\` : line))].join('\n')
  const files = shown.filter(([, value]) => typeof value !== 'string')
  const data = shown.filter(([, value]) => typeof value === 'string')
  const python = [
    'import os',
    ...(files.length ? ['from pathlib import Path'] : []),
    '',
    'import requests',
    '',
    'answer = requests.post(',
    `    ${JSON.stringify(url)},`,
    '    headers={"Authorization": f"Bearer {os.environ[\'MODELGATE_TOKEN\']}"},',
    ...(files.length ? [`    files={${files.map(([field, value]) => `${JSON.stringify(field.name)}: (${JSON.stringify(fileName(field.name, value))}, Path(${JSON.stringify(fileName(field.name, value))}).read_bytes())`).join(', ')}},`] : []),
    ...(data.length ? [`    data={${data.map(([field, value]) => `${JSON.stringify(field.name)}: ${JSON.stringify(value)}`).join(', ')}},`] : []),
    '    timeout=60,',
    ')',
    'answer.raise_for_status()',
    'print(answer.json()["outputs"])',
  ].join('\n')
  return { curl, python }
}

export type Point = [number, number]
export type BoxedLine = { text: string; box: Point[]; confidence: number | null }

function isPoint(value: unknown): value is Point {
  return Array.isArray(value) && value.length === 2 && value.every((part) => typeof part === 'number' && Number.isFinite(part))
}

/** A `json` output holding text lines with boxes (the OCR shape), read as lines; null for any other value. */
export function boxedLines(value: unknown): BoxedLine[] | null {
  if (!Array.isArray(value) || value.length === 0) return null
  const lines: BoxedLine[] = []
  for (const item of value) {
    if (typeof item !== 'object' || item === null) return null
    const { text, box, confidence } = item as { text?: unknown; box?: unknown; confidence?: unknown }
    if (typeof text !== 'string' || !Array.isArray(box) || box.length < 3 || !box.every(isPoint)) return null
    lines.push({ text, box: box as Point[], confidence: typeof confidence === 'number' ? confidence : null })
  }
  return lines
}

/**
 * A box's corners in the displayed preview's pixels: the image is `natural` pixels, shown at
 * `shown` (CSS pixels, same aspect ratio). Corners are clamped to the image.
 */
export function scaleBox(box: Point[], natural: { width: number; height: number }, shown: { width: number; height: number }): Point[] {
  const sx = natural.width ? shown.width / natural.width : 0
  const sy = natural.height ? shown.height / natural.height : 0
  const clamp = (value: number, high: number) => Math.min(Math.max(value, 0), high)
  return box.map(([x, y]) => [+(clamp(x, natural.width) * sx).toFixed(2), +(clamp(y, natural.height) * sy).toFixed(2)])
}

/** SVG polygon points of a box. */
export function polygonPoints(box: Point[]): string {
  return box.map(([x, y]) => `${x},${y}`).join(' ')
}

export type Shown = { name: string; kind: 'lines'; lines: BoxedLine[] } | { name: string; kind: 'image'; src: string } | { name: string; kind: 'text'; text: string }

/** How each output is shown: line boxes over the image, an image, or text (strings as they are, anything else as indented JSON). */
export function shownOutputs(declaration: Declaration, outputs: Record<string, unknown>): Shown[] {
  const names = [...declaration.outputs.map((output) => output.name), ...Object.keys(outputs).filter((name) => !declaration.outputs.some((output) => output.name === name))]
  return names.filter((name) => name in outputs).map((name): Shown => {
    const value = outputs[name]
    const kind = declaration.outputs.find((output) => output.name === name)?.kind
    const lines = kind === 'json' || kind === undefined ? boxedLines(value) : null
    if (lines) return { name, kind: 'lines', lines }
    if (kind === 'image' && typeof value === 'string' && value.startsWith('data:image/')) return { name, kind: 'image', src: value }
    return { name, kind: 'text', text: typeof value === 'string' ? value : JSON.stringify(value, null, 2) }
  })
}

/**
 * The first calls a newcomer copies: curl, Python (openai) and Node (openai) against
 * this server, with the token filled in where it is shown (once, when created) and
 * `$MODELGATE_TOKEN` read from the environment everywhere else.
 */
export type QuickModel = { id?: string; task?: string }
export type Snippets = { curl: string; python: string; node: string }

export const TOKEN_VARIABLE = 'MODELGATE_TOKEN'

export function quickstart(base: string, models: QuickModel[], token?: string): Snippets {
  const embedder = models.find((model) => model.task === 'embedding')?.id ?? 'all-minilm-l6-v2'
  const writer = models.find((model) => model.task === 'text-generation')?.id
  const bearer = token ?? `$${TOKEN_VARIABLE}`
  const curl = [
    `curl ${base}/v1/embeddings \\`,
    `  -H "Authorization: Bearer ${bearer}" \\`,
    `  -H "Content-Type: application/json" \\`,
    `  -d '{"model": "${embedder}", "input": "The frog jumped into the well."}'`,
  ].join('\n')
  const pythonKey = token ? JSON.stringify(token) : `os.environ["${TOKEN_VARIABLE}"]`
  const python = [
    ...(token ? [] : ['import os', '']),
    'from openai import OpenAI',
    '',
    `client = OpenAI(base_url="${base}/v1", api_key=${pythonKey})`,
    `vector = client.embeddings.create(model="${embedder}", input="The frog jumped into the well.")`,
    'print(len(vector.data[0].embedding), "numbers")',
    ...(writer
      ? [`story = client.completions.create(model="${writer}", prompt="Once upon a time", max_tokens=40)`, 'print(story.choices[0].text)']
      : []),
  ].join('\n')
  const nodeKey = token ? `'${token}'` : `process.env.${TOKEN_VARIABLE}`
  const node = [
    "import OpenAI from 'openai'",
    '',
    `const client = new OpenAI({ baseURL: '${base}/v1', apiKey: ${nodeKey} })`,
    `const vector = await client.embeddings.create({ model: '${embedder}', input: 'The frog jumped into the well.' })`,
    "console.log(vector.data[0].embedding.length, 'numbers')",
    ...(writer
      ? [`const story = await client.completions.create({ model: '${writer}', prompt: 'Once upon a time', max_tokens: 40 })`, 'console.log(story.choices[0].text)']
      : []),
  ].join('\n')
  return { curl, python, node }
}

/**
 * A first call to the server's first handler model (`task: "handler"`), whose `schema` declares
 * its inputs: every file as `-F name=@name.png`, the other required fields as `-F name=`.
 * Null when the server has no handler model. The token needs the `predict` scope.
 */
export function predictQuickstart(base: string, models: (QuickModel & { schema?: Record<string, unknown> })[], token?: string): string | null {
  const model = models.find((candidate) => candidate.task === 'handler' && candidate.id)
  if (!model) return null
  const inputs = (Array.isArray(model.schema?.inputs) ? model.schema.inputs : []) as { name?: string; kind?: string; required?: boolean }[]
  const parts = inputs
    .filter((input) => input.name && input.required !== false)
    .map((input) => `  -F ${input.name}=${input.kind === 'image' ? `@${input.name}.png` : ''}`)
  const lines = [`curl ${base}/v1/models/${model.id}/predict`, `  -H "Authorization: Bearer ${token ?? `$${TOKEN_VARIABLE}`}"`, ...parts]
  return lines.join(' \\\n')
}

import { predictQuickstart, quickstart } from './quickstart'

const models = [
  { id: 'storyteller', task: 'text-generation' },
  { id: 'all-minilm-l6-v2', task: 'embedding' },
]

test('with the token: every snippet carries it, the base URL and the model ids', () => {
  const { curl, python, node } = quickstart('http://127.0.0.1:8000', models, 'mg_secret')
  expect(curl).toContain('curl http://127.0.0.1:8000/v1/embeddings')
  expect(curl).toContain('Authorization: Bearer mg_secret')
  expect(curl).toContain('"model": "all-minilm-l6-v2"')
  expect(python).toContain('OpenAI(base_url="http://127.0.0.1:8000/v1", api_key="mg_secret")')
  expect(python).toContain('model="storyteller", prompt="Once upon a time"')
  expect(python).not.toContain('import os')
  expect(node).toContain("new OpenAI({ baseURL: 'http://127.0.0.1:8000/v1', apiKey: 'mg_secret' })")
  expect(node).toContain("model: 'all-minilm-l6-v2'")
})

test('without it: the placeholder, read from the environment', () => {
  const { curl, python, node } = quickstart('https://api.example.com', models)
  expect(curl).toContain('Authorization: Bearer $MODELGATE_TOKEN')
  expect(python).toContain('api_key=os.environ["MODELGATE_TOKEN"]')
  expect(python.startsWith('import os\n')).toBe(true)
  expect(node).toContain('apiKey: process.env.MODELGATE_TOKEN')
  for (const text of [curl, python, node]) expect(text).not.toContain('mg_')
})

test('a server without a text model offers the embeddings call only', () => {
  const { python, node } = quickstart('http://x', [{ id: 'e5', task: 'embedding' }])
  expect(python).toContain('model="e5"')
  expect(python).not.toContain('completions')
  expect(node).not.toContain('completions')
})

test('with a handler model, a predict call to copy; none without one', () => {
  const ocr = { id: 'ocr-en', task: 'handler', schema: { inputs: [{ name: 'image', kind: 'image', required: true }, { name: 'lang', kind: 'text', required: false }] } }
  expect(predictQuickstart('http://x', [...models, ocr])).toBe('curl http://x/v1/models/ocr-en/predict \\\n  -H "Authorization: Bearer $MODELGATE_TOKEN" \\\n  -F image=@image.png')
  expect(predictQuickstart('http://x', [ocr], 'mg_secret')).toContain('Bearer mg_secret')
  expect(predictQuickstart('http://x', models)).toBeNull()
})

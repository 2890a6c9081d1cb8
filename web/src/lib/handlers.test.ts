import {
  boxedLines,
  declarationOf,
  formFields,
  formParts,
  formProblems,
  initialValues,
  polygonPoints,
  predictSnippets,
  scaleBox,
  shellQuote,
  shownOutputs,
  toFormData,
  type Declaration,
  type Picked,
} from './handlers'

// As `GET /v1/models` lists the OCR example, and a handler with every other kind.
const OCR: Declaration = {
  inputs: [{ name: 'image', kind: 'image', required: true, max_bytes: 10_000_000, max_pixels: 16_000_000, formats: ['png', 'jpeg', 'webp'], description: 'A photo or scan.' }],
  outputs: [{ name: 'lines', kind: 'json', required: true }, { name: 'text', kind: 'text', required: true }],
  units: 'images',
}
const MIXED: Declaration = {
  inputs: [
    { name: 'photo', kind: 'image', required: true, formats: ['png'], max_bytes: 1000 },
    { name: 'threshold', kind: 'number', required: false, default: 0.3, minimum: 0, maximum: 1 },
    { name: 'count', kind: 'number', required: true, minimum: 1, integer: true },
    { name: 'caption', kind: 'text', required: false, max_length: 80 },
    { name: 'notes', kind: 'text', required: false },
    { name: 'upright', kind: 'boolean', required: false, default: true },
    { name: 'options', kind: 'json', required: false },
    { name: 'vector', kind: 'tensor', required: false, dtype: 'float32', shape: [2, -1] },
  ],
  outputs: [{ name: 'label', kind: 'text' }, { name: 'scores', kind: 'tensor' }, { name: 'mask', kind: 'image' }],
}
const picked = (name = 'page.png', size = 10): Picked => ({ file: new Blob([new Uint8Array(size)], { type: 'image/png' }), name, preview: 'data:image/png;base64,AAAA' })

test('only a handler model with a declared schema gets a form', () => {
  expect(declarationOf({ task: 'handler', schema: OCR as unknown as Record<string, unknown> })).toBe(OCR)
  expect(declarationOf({ task: 'embedding', schema: OCR as unknown as Record<string, unknown> })).toBeNull()
  expect(declarationOf({ task: 'handler' })).toBeNull()
  expect(declarationOf(undefined)).toBeNull()
})

test('each declared input becomes its control, with its limits and a hint', () => {
  const [image] = formFields(OCR)
  expect(image).toMatchObject({ name: 'image', control: 'image', required: true, accept: 'image/png,image/jpeg,image/webp', maxBytes: 10_000_000 })
  expect(image.hint).toBe('A photo or scan. · PNG, JPEG, WEBP · up to 10 MB · 16 megapixels')
  const fields = Object.fromEntries(formFields(MIXED).map((field) => [field.name, field]))
  expect(fields.threshold).toMatchObject({ control: 'number', min: 0, max: 1, step: 'any', required: false })
  expect(fields.threshold.hint).toBe('from 0 to 1 · optional')
  expect(fields.count).toMatchObject({ control: 'number', min: 1, max: undefined, step: 1 })
  expect(fields.count.hint).toBe('at least 1 · a whole number')
  expect(fields.caption).toMatchObject({ control: 'text', maxLength: 80 })
  expect(fields.notes.control).toBe('textarea')
  expect(fields.upright.control).toBe('checkbox')
  expect(fields.options.control).toBe('json')
  expect(fields.vector).toMatchObject({ control: 'json' })
  expect(fields.vector.hint).toContain('float32 of shape [2, -1]')
  expect(formFields(MIXED).map((field) => field.name)).toEqual(MIXED.inputs.map((input) => input.name))
})

test('the form starts from the declared defaults', () => {
  expect(initialValues(MIXED)).toEqual({ photo: null, threshold: '0.3', count: '', caption: '', notes: '', upright: true, options: '', vector: '' })
})

test('the browser names each field it can already see is wrong', () => {
  const fields = formFields(MIXED)
  const values = { ...initialValues(MIXED), threshold: '1.5', count: '2.5', options: '{nope' }
  expect(formProblems(fields, values)).toEqual({ photo: 'Choose or drop an image.', threshold: 'Must be at most 1.', count: 'Not a valid integer.', options: 'Not valid JSON.' })
  expect(formProblems(fields, { ...values, photo: picked('big.png', 5000), threshold: '0', count: '3', options: '{"a": 1}' })).toEqual({ photo: 'The file is larger than 1 kB.' })
  expect(formProblems(fields, { ...values, photo: picked(), threshold: '', count: '3', options: '' })).toEqual({})
})

test('the multipart body: files as files, booleans and numbers as text, empty optional fields left out', async () => {
  const fields = formFields(MIXED)
  const photo = picked('scan.png')
  const parts = formParts(fields, { ...initialValues(MIXED), photo, count: '3', options: '{ "a": [1, 2] }', upright: false })
  expect(parts).toEqual([['photo', photo], ['threshold', '0.3'], ['count', '3'], ['upright', 'false'], ['options', '{"a":[1,2]}']])
  const form = toFormData(parts)
  const file = form.get('photo') as File
  expect(file.name).toBe('scan.png')
  expect(file.size).toBe(10)
  expect(form.get('upright')).toBe('false')
})

test('the same request as curl -F and as Python requests, with the chosen file name', () => {
  const fields = formFields(MIXED)
  const values = { ...initialValues(MIXED), photo: picked('my scan.png'), count: '3', caption: "it's @home" }
  const { curl, python } = predictSnippets('http://127.0.0.1:8000', 'tiny', fields, values)
  expect(curl).toBe([
    'curl http://127.0.0.1:8000/v1/models/tiny/predict \\',
    '  -H "Authorization: Bearer $MODELGATE_TOKEN" \\',
    "  -F 'photo=@my scan.png' \\",
    '  -F threshold=0.3 \\',
    '  -F count=3 \\',
    "  --form-string 'caption=it'\\''s @home' \\",
    '  -F upright=true',
  ].join('\n'))
  expect(python).toContain('answer = requests.post(\n    "http://127.0.0.1:8000/v1/models/tiny/predict",')
  expect(python).toContain('files={"photo": ("my scan.png", Path("my scan.png").read_bytes())},')
  expect(python).toContain('data={"threshold": "0.3", "count": "3", "caption": "it\'s @home", "upright": "true"},')
  expect(python).toContain('headers={"Authorization": f"Bearer {os.environ[\'MODELGATE_TOKEN\']}"}')
})

test('before an image is chosen, the snippets show where it goes', () => {
  const { curl, python } = predictSnippets('https://api.example.org', 'ocr-en', formFields(OCR), initialValues(OCR))
  expect(curl).toBe('curl https://api.example.org/v1/models/ocr-en/predict \\\n  -H "Authorization: Bearer $MODELGATE_TOKEN" \\\n  -F image=@image.png')
  expect(python).toContain('files={"image": ("image.png", Path("image.png").read_bytes())},')
  expect(python).not.toContain('data=')
})

test('shell quoting leaves plain words alone and quotes the rest', () => {
  expect(shellQuote('image=@page.png')).toBe('image=@page.png')
  expect(shellQuote('a b')).toBe("'a b'")
  expect(shellQuote("it's")).toBe("'it'\\''s'")
  expect(shellQuote('$HOME')).toBe("'$HOME'")
})

const LINES = [
  { text: 'HELLO WORLD 42', box: [[46, 48], [526, 48], [526, 100], [46, 100]], confidence: 0.9962 },
  { text: 'second', box: [[10, 120], [90, 118], [91, 140], [11, 142]], confidence: 0.5 },
]

test('text lines with boxes are read as lines; any other value is not', () => {
  expect(boxedLines(LINES)).toEqual(LINES)
  expect(boxedLines([{ text: 'a', box: [[0, 0], [1, 0], [1, 1], [0, 1]] }])).toEqual([{ text: 'a', box: [[0, 0], [1, 0], [1, 1], [0, 1]], confidence: null }])
  expect(boxedLines([])).toBeNull()
  expect(boxedLines({ text: 'a' })).toBeNull()
  expect(boxedLines([{ text: 'a', box: [[0, 0], [1, 'x']] }])).toBeNull()
  expect(boxedLines([{ label: 'cat', score: 0.9 }])).toBeNull()
})

test('boxes are scaled from image pixels to the preview as shown, clamped to the image', () => {
  const natural = { width: 600, height: 150 }
  expect(scaleBox(LINES[0].box as [number, number][], natural, { width: 300, height: 75 })).toEqual([[23, 24], [263, 24], [263, 50], [23, 50]])
  expect(scaleBox([[-5, -5], [700, 10], [600, 200]], natural, { width: 600, height: 150 })).toEqual([[0, 0], [600, 10], [600, 150]])
  expect(scaleBox([[10, 10]], { width: 0, height: 0 }, { width: 100, height: 100 })).toEqual([[0, 0]])
  expect(polygonPoints([[23, 24], [263, 24], [263, 50.5]])).toBe('23,24 263,24 263,50.5')
})

test('outputs are shown by kind: lines over the image, images, text and JSON', () => {
  expect(shownOutputs(OCR, { text: 'HELLO WORLD 42', lines: LINES })).toEqual([
    { name: 'lines', kind: 'lines', lines: LINES },
    { name: 'text', kind: 'text', text: 'HELLO WORLD 42' },
  ])
  const shown = shownOutputs(MIXED, { scores: [0.1, 0.9], label: 'cat', mask: 'data:image/png;base64,AAAA', extra: { a: 1 } })
  expect(shown).toEqual([
    { name: 'label', kind: 'text', text: 'cat' },
    { name: 'scores', kind: 'text', text: '[\n  0.1,\n  0.9\n]' },
    { name: 'mask', kind: 'image', src: 'data:image/png;base64,AAAA' },
    { name: 'extra', kind: 'text', text: '{\n  "a": 1\n}' },
  ])
})

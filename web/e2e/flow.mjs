// The acceptance journey of the web app, in Debian's Chromium driven by playwright-core.
// Run by tests/web/test_e2e.py, which starts gunicorn (PostgreSQL, Redis, both models) as
// `make run` does, without a mail server: emails' links are printed in its log (MAIL_LOG).
import assert from 'node:assert/strict'
import { execFileSync } from 'node:child_process'
import { mkdirSync, readFileSync } from 'node:fs'
import { createRequire } from 'node:module'
import { basename, dirname, join } from 'node:path'

import { chromium } from 'playwright-core'

const BASE = process.env.BASE_URL
const MAIL_LOG = process.env.MAIL_LOG
const SHOTS = process.env.SCREENSHOTS_DIR
const OCR_IMAGE = process.env.OCR_IMAGE
const OCR_TEXT = process.env.OCR_TEXT
const ADMIN = { email: process.env.ADMIN_EMAIL, password: process.env.ADMIN_PASSWORD }
const USER = { email: `reader-${Date.now()}@example.org`, password: 'a long and happy passphrase', name: 'Rapunzel' }
const AXE = readFileSync(createRequire(import.meta.url).resolve('axe-core/axe.min.js'), 'utf8')
mkdirSync(SHOTS, { recursive: true })

const step = (text) => console.log(`ok: ${text}`)

/** The link of the development outbox's plain log line: `LABEL for ADDRESS: URL`. */
async function waitForLogLink(label, to, timeoutMs = 20_000) {
  const prefix = `${label} for ${to}: `
  const until = Date.now() + timeoutMs
  while (Date.now() < until) {
    const line = readFileSync(MAIL_LOG, 'utf8').split('\n').find((text) => text.startsWith(prefix))
    if (line) return line.slice(prefix.length).trim()
    await new Promise((resolve) => setTimeout(resolve, 200))
  }
  throw new Error(`no "${prefix}" line in the server's log`)
}

/** No serious or critical axe-core violation on the page as it is now. */
async function accessible(page, name) {
  // Evaluated through the DevTools protocol: the app's CSP (rightly) refuses an inline <script>.
  await page.evaluate(AXE)
  const violations = await page.evaluate(async () => {
    const result = await window.axe.run(document, { resultTypes: ['violations'] })
    return result.violations
      .filter((v) => v.impact === 'serious' || v.impact === 'critical')
      .map((v) => `${v.id}: ${v.help} (${v.nodes.map((n) => n.target.join(' ')).slice(0, 3).join(', ')})`)
  })
  assert.deepEqual(violations, [], `axe on ${name}`)
  step(`axe: no serious violation on ${name}`)
}

async function fitsPhone(page, name) {
  await page.setViewportSize({ width: 390, height: 844 })
  await page.waitForTimeout(200)
  const overflow = await page.evaluate(() => document.documentElement.scrollWidth - window.innerWidth)
  const culprits = overflow <= 1 ? [] : await page.evaluate(() =>
    [...document.body.querySelectorAll('*')]
      .filter((node) => node.getBoundingClientRect().right > window.innerWidth + 1)
      .slice(-3)
      .map((node) => `${node.tagName.toLowerCase()}.${node.className}: ${(node.textContent ?? '').slice(0, 40)}`))
  assert.ok(overflow <= 1, `${name} is ${overflow}px wider than a phone: ${culprits.join(' | ')}`)
  await page.setViewportSize({ width: 1280, height: 900 })
  step(`${name} fits a 390px phone`)
}

async function shot(page, name) {
  await page.screenshot({ path: join(SHOTS, `${name}.png`), fullPage: true })
}

async function signIn(page, who) {
  await page.goto(`${BASE}/login`)
  await page.getByLabel('Email').fill(who.email)
  await page.getByLabel('Password').fill(who.password)
  await page.getByRole('button', { name: 'Sign in' }).click()
  await page.waitForURL(`${BASE}/dashboard`)
}

const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM ?? '/usr/bin/chromium',
  headless: true,
  args: ['--no-sandbox', '--disable-gpu', '--disable-background-networking', '--disable-component-update', '--disable-sync'],
})
const context = await browser.newContext({ viewport: { width: 1280, height: 900 } })
await context.grantPermissions(['clipboard-read', 'clipboard-write'], { origin: BASE })
const page = await context.newPage()
const refreshes = []
let lastRefreshAt = 0
page.on('response', (response) => {
  if (response.url().endsWith('/v1/auth/refresh')) {
    refreshes.push(response.status())
    lastRefreshAt = Date.now()
  }
})
page.on('pageerror', (error) => console.log(`page error: ${error.message}`))

try {
  // Sign up; the form checks fields before sending, and shows the server's own errors.
  await page.goto(`${BASE}/signup`)
  assert.match(await page.getByTestId('tagline').textContent(), /OpenAI-compatible API/)
  await page.getByRole('button', { name: 'Create account' }).click()
  await page.getByText('Enter a valid email address.').waitFor()
  await accessible(page, 'sign up (with errors)')
  await page.getByLabel('Name').fill(USER.name)
  await page.getByLabel('Email').fill(USER.email)
  await page.getByLabel('Password').fill(USER.password)
  await page.getByRole('button', { name: 'Create account' }).click()
  await page.getByRole('heading', { name: 'Check your email' }).waitFor()
  step('signed up')

  // The verification link, from the plain line the server prints with no mail server.
  await page.getByText('the link is in the server').waitFor()
  const link = await waitForLogLink('Verification link', USER.email)
  assert.match(link, new RegExp(`^${BASE}/verify-email\\?token=[A-Za-z0-9_.-]+$`))
  await page.goto(link)
  await page.getByText('Your email is confirmed.').waitFor()
  step('verified through the link in the development mail log')

  await page.goto(`${BASE}/login`)
  await page.getByTestId('tagline').waitFor()
  await accessible(page, 'sign in')
  await signIn(page, USER)
  const signedInAt = Date.now()
  await page.getByRole('heading', { name: `Welcome, ${USER.name}` }).waitFor()
  await page.getByText('all-minilm-l6-v2').first().waitFor()
  // The quickstart: base URL, the models, a snippet reading $MODELGATE_TOKEN, the reference.
  const quick = page.getByTestId('quickstart')
  assert.equal(await quick.getByTestId('base-url').textContent(), `${BASE}/v1`)
  await quick.getByTestId('model-ids').getByText('storyteller').waitFor()
  assert.match(await quick.getByTestId('model-ids').textContent(), /all-minilm-l6-v2/)
  assert.match(await quick.getByTestId('snippet').textContent(), /Bearer \$MODELGATE_TOKEN/)
  await quick.getByRole('button', { name: 'Node (openai)' }).click()
  assert.match(await quick.getByTestId('snippet').textContent(), /apiKey: process\.env\.MODELGATE_TOKEN/)
  assert.equal(await quick.getByRole('link', { name: /API reference/ }).getAttribute('href'), '/docs')
  await accessible(page, 'dashboard')
  await fitsPhone(page, 'dashboard')
  await shot(page, 'dashboard')
  step('signed in')

  // A token: shown once in a dialog, copied, and it works from outside the browser.
  await page.getByRole('link', { name: 'API tokens' }).click()
  await page.getByText('No tokens yet.').waitFor()
  await page.getByLabel('Name').fill('e2e laptop')
  await page.getByLabel('Your models').check()
  await page.getByRole('button', { name: 'Create token' }).click()
  const dialog = page.getByRole('dialog', { name: 'Your new token' })
  await dialog.waitFor()
  const token = (await dialog.getByTestId('new-token').textContent()).trim()
  assert.match(token, /^mg_[A-Za-z0-9]{40,}/)
  // The dialog's quickstart carries this token (shown this once): its curl works as copied.
  const snippet = dialog.getByTestId('snippet')
  await dialog.getByTestId('model-ids').getByText('storyteller').waitFor()
  const curl = await snippet.textContent()
  assert.ok(curl.includes(`Bearer ${token}`) && curl.startsWith(`curl ${BASE}/v1/embeddings`), curl)
  await dialog.getByRole('button', { name: 'Copy curl' }).click()
  assert.equal(await page.evaluate(() => navigator.clipboard.readText()), curl)
  const answer = JSON.parse(execFileSync('bash', ['-c', curl], { encoding: 'utf8', timeout: 30_000 }))
  assert.equal(answer.data[0].embedding.length, 384)
  // A handler model is served: the dialog offers its predict call, with this token.
  assert.ok((await dialog.getByTestId('predict-snippet').textContent()).includes(`${BASE}/v1/models/ocr-en/predict`))
  await dialog.getByRole('button', { name: 'Python (openai)' }).click()
  assert.ok((await snippet.textContent()).includes(`api_key="${token}"`))
  await dialog.getByRole('link', { name: /API reference/ }).waitFor()
  await dialog.getByRole('button', { name: 'Copy', exact: true }).click()
  assert.equal(await page.evaluate(() => navigator.clipboard.readText()), token)
  await accessible(page, 'new token dialog')
  await dialog.getByRole('button', { name: 'Done' }).click()
  const models = await fetch(`${BASE}/v1/models`, { headers: { Authorization: `Bearer ${await page.evaluate(() => navigator.clipboard.readText())}` } })
  assert.equal(models.status, 200)
  const row = page.getByRole('row', { name: /e2e laptop/ })
  await row.waitFor()
  assert.ok((await row.textContent()).includes(token.slice(-4)))
  await accessible(page, 'tokens')
  await fitsPhone(page, 'tokens')
  await shot(page, 'tokens')
  step('token created, copied, and used with fetch')

  // Embeddings heat map.
  await page.getByRole('link', { name: 'Playground' }).click()
  const embeddingModel = page.locator('#embedding-model')
  await embeddingModel.locator('option', { hasText: 'all-minilm-l6-v2' }).waitFor({ state: 'attached' })
  assert.equal(await embeddingModel.inputValue(), 'all-minilm-l6-v2')
  await page.getByRole('button', { name: 'Compare' }).click()
  const heatmap = page.getByTestId('heatmap')
  await heatmap.waitFor()
  await page.getByTestId('heat-legend').waitFor()
  const shade = (label) => heatmap.getByLabel(label).evaluate((cell) => getComputedStyle(cell).backgroundColor)
  const brightness = (rgb) => rgb.match(/\d+/g).slice(0, 3).reduce((sum, part) => sum + Number(part), 0)
  assert.ok(brightness(await shade('#1 and #1: 1.00')) < brightness(await shade(/^#1 and #3:/)), 'more alike is not darker')
  assert.equal(await heatmap.locator('tbody tr').count(), 3)
  assert.equal(await heatmap.getByLabel('#1 and #1: 1.00').count(), 1)
  const frogToad = Number((await heatmap.getByLabel(/^#1 and #2:/).textContent()).trim())
  const frogRates = Number((await heatmap.getByLabel(/^#1 and #3:/).textContent()).trim())
  assert.ok(frogToad > frogRates, `frog/toad ${frogToad} should beat frog/rates ${frogRates}`)
  step(`heat map: frog~toad ${frogToad}, frog~rates ${frogRates}`)

  // A story streams in, and the stop button stops it.
  assert.equal(await page.getByLabel('The story begins').inputValue(), 'Once upon a time')
  assert.equal(await page.locator('#story-model').inputValue(), 'storyteller')
  await page.getByLabel('Max tokens').fill('200')
  await page.getByRole('button', { name: 'Tell the story' }).click()
  const story = page.getByTestId('story')
  await page.waitForFunction(() => document.querySelector('[data-testid=story]')?.dataset.state === 'streaming')
  await page.waitForFunction(() => (document.querySelector('[data-testid=story]')?.textContent ?? '').length > 40)
  const partial = (await story.textContent()).length
  await page.getByRole('button', { name: 'Stop' }).click()
  await page.waitForFunction(() => document.querySelector('[data-testid=story]')?.dataset.state === 'stopped')
  const stopped = (await story.textContent()).length
  await page.waitForTimeout(1000)
  assert.equal((await story.textContent()).length, stopped, 'text kept coming after Stop')
  assert.ok(stopped >= partial)
  assert.doesNotMatch(await story.textContent(), /^\s*\n/, 'the story starts with a blank line')
  step(`story streamed (${stopped} characters) and stopped`)

  // Two chat turns over /v1/responses: the second sends only its text and the first's id.
  // (Chromium does not show the body of the app's cloned requests: each answer's last
  // event carries the response object, which echoes what its request sent.)
  const answered = []
  page.on('response', async (response) => {
    if (new URL(response.url()).pathname !== '/v1/responses') return
    const events = (await response.text()).split('\n').filter((line) => line.startsWith('data: '))
    answered.push(JSON.parse(events.at(-1).slice(6)))
  })
  const turn = async (label, text) => {
    await page.getByLabel(label).fill(text)
    await page.getByRole('button', { name: 'Tell the story' }).click()
    await page.waitForFunction(() => document.querySelector('[data-testid=story]')?.dataset.state === 'done')
    assert.ok((await story.textContent()).trim().length > 0, `no text for ${text}`)
    return page.getByTestId('previous-response').textContent()
  }
  await page.getByLabel('Max tokens').fill('30')
  const firstResponse = await turn('The story begins', 'A frog sat by the well')
  const secondResponse = await turn('The story goes on', 'Then the princess came')
  for (let wait = 0; answered.length < 2 && wait < 50; wait++) await page.waitForTimeout(100)
  assert.deepEqual(answered.map((event) => [event.response.id, event.response.previous_response_id]), [
    [firstResponse, null],
    [secondResponse, firstResponse],
  ])
  // The storyteller runs out of max_output_tokens: `incomplete` is a normal end.
  for (const event of answered) assert.match(event.type, /^response\.(completed|incomplete)$/)
  assert.ok(secondResponse.startsWith('resp_') && secondResponse !== firstResponse, secondResponse)
  await page.getByText('A frog sat by the well').waitFor()
  await page.getByText('This request as curl and Python').click()
  const curlBox = page.getByLabel('curl command')
  const chatCurl = await curlBox.textContent()
  assert.ok(chatCurl.startsWith(`curl -N ${BASE}/v1/responses`) && chatCurl.includes(`"previous_response_id":"${secondResponse}"`), chatCurl)
  assert.ok(await curlBox.evaluate((box) => box.scrollWidth <= box.clientWidth + 1), 'the curl box cuts its lines')
  await accessible(page, 'playground')
  await fitsPhone(page, 'playground')
  await shot(page, 'playground')
  await page.getByRole('button', { name: 'New conversation' }).click()
  await page.getByLabel('The story begins').waitFor()
  assert.equal(await page.getByTestId('previous-response').count(), 0)
  step(`two chat turns, the second continuing ${firstResponse}`)

  // Your own model: the OCR example's form is built from its declared input (one image).
  await page.getByTestId('model-list').getByText('ocr-en').waitFor()
  const handler = page.getByTestId('handler-playground')
  assert.equal(await handler.locator('#handler-model').inputValue(), 'ocr-en')
  const run = handler.getByRole('button', { name: 'Run the model' })
  await run.click()
  await handler.getByText('Choose or drop an image.').waitFor()
  // Not an image: the server's 422 names the field, in the app's error display.
  await handler.getByLabel('image (image)').setInputFiles({ name: 'notes.txt', mimeType: 'text/plain', buffer: Buffer.from('not a picture') })
  await run.click()
  const refused = handler.getByRole('alert')
  await refused.waitFor()
  assert.match(await refused.textContent(), /image: Not an image this model reads/)
  assert.match(await refused.textContent(), /Quote this id/)
  // The rendered page, dropped on the form: a preview, then the lines boxed over it.
  const picture = readFileSync(OCR_IMAGE).toString('base64')
  const transfer = await page.evaluateHandle(({ data, name }) => {
    const bytes = Uint8Array.from(atob(data), (char) => char.charCodeAt(0))
    const dropped = new DataTransfer()
    dropped.items.add(new File([bytes], name, { type: 'image/png' }))
    return dropped
  }, { data: picture, name: basename(OCR_IMAGE) })
  const zone = handler.getByTestId('drop-image')
  await zone.dispatchEvent('dragover', { dataTransfer: transfer })
  await zone.dispatchEvent('drop', { dataTransfer: transfer })
  await handler.getByRole('img', { name: `Preview of ${basename(OCR_IMAGE)}` }).waitFor()
  await run.click()
  await handler.getByTestId('predict-result').waitFor({ timeout: 60_000 })
  const expected = OCR_TEXT.split('\n')
  await handler.getByTestId('line-box').nth(expected.length - 1).waitFor()
  assert.equal(await handler.getByTestId('line-box').count(), expected.length)
  assert.deepEqual(await handler.getByTestId('line-text').allTextContents(), expected)
  assert.equal((await handler.getByTestId('output-text').textContent()).trim(), OCR_TEXT)
  // Each box lies over the image as shown, its line in order top to bottom.
  const placed = await handler.evaluate((card) => {
    const shown = card.querySelector('img[alt^="The image read"]').getBoundingClientRect()
    return { shown: [shown.left, shown.top, shown.right, shown.bottom], boxes: [...card.querySelectorAll('[data-testid=line-box]')].map((box) => { const r = box.getBoundingClientRect(); return [r.left, r.top, r.right, r.bottom] }) }
  })
  for (const [left, top, right, bottom] of placed.boxes) {
    assert.ok(left >= placed.shown[0] - 1 && top >= placed.shown[1] - 1 && right <= placed.shown[2] + 1 && bottom <= placed.shown[3] + 1, `box ${[left, top, right, bottom]} outside the image ${placed.shown}`)
    assert.ok(right - left > 50 && bottom - top > 10, `box ${[left, top, right, bottom]} too small`)
  }
  assert.ok(placed.boxes[0][3] <= placed.boxes[1][1] + 1, 'the lines are not top to bottom')
  // The same request as curl -F works from a shell with the token (it has the predict scope).
  await handler.getByText('This prediction as curl and Python').click()
  const predictCurl = await handler.getByLabel('Predict request as curl').textContent()
  assert.ok(predictCurl.startsWith(`curl ${BASE}/v1/models/ocr-en/predict`) && predictCurl.includes(`-F image=@${basename(OCR_IMAGE)}`), predictCurl)
  assert.match(await handler.getByLabel('Predict request in Python').textContent(), /files=\{"image": \(/)
  const predicted = JSON.parse(execFileSync('bash', ['-c', predictCurl], { cwd: dirname(OCR_IMAGE), env: { ...process.env, MODELGATE_TOKEN: token }, encoding: 'utf8', timeout: 60_000 }))
  assert.equal(predicted.outputs.text, OCR_TEXT)
  assert.deepEqual(predicted.usage, { units: 1, unit: 'images' })
  await accessible(page, 'playground (OCR result)')
  await fitsPhone(page, 'playground (OCR result)')
  await handler.screenshot({ path: join(SHOTS, 'ocr.png') })
  step(`OCR in the playground: ${expected.length} boxes drawn, "${OCR_TEXT.replace('\n', ' / ')}" read; its curl -F answered the same`)

  // It is in the history, kept as cancelled.
  await page.getByRole('link', { name: 'History' }).click()
  await page.getByTestId('history').getByText('cancelled').first().waitFor()
  await page.getByTestId('history').getByText(/from the web session/).first().waitFor()
  await accessible(page, 'history')
  step('the stopped story is in the history')

  // Batches: upload a JSONL file, watch the bar move, download both files; cancel another.
  const lines = (count, tag) =>
    Array.from({ length: count }, (_, i) => JSON.stringify({ custom_id: `${tag}-${i}`, method: 'POST', url: '/v1/embeddings', body: { input: `A ${tag} number ${i} by the well.` } }))
  const startBatch = async (text) => {
    await page.locator('input[type=file]').setInputFiles({ name: 'requests.jsonl', mimeType: 'application/jsonl', buffer: Buffer.from(text) })
    await page.getByRole('button', { name: 'Start batch' }).click()
  }
  await page.getByRole('link', { name: 'Batches' }).click()
  await page.getByRole('heading', { name: 'Batches', exact: true }).waitFor()
  const bad = JSON.stringify({ custom_id: 'bad', method: 'POST', url: '/v1/embeddings', body: { input: 42 } })
  await startBatch([...lines(1200, 'frog'), bad].join('\n'))
  const first = page.getByTestId('batches').locator('li').first()
  const seen = new Set()
  for (let i = 0; i < 600 && (await first.getAttribute('data-status')) !== 'completed'; i++) {
    seen.add(Number(await first.getByRole('progressbar').getAttribute('aria-valuenow')))
    await page.waitForTimeout(250)
  }
  assert.equal(await first.getAttribute('data-status'), 'completed')
  const moving = [...seen].filter((value) => value > 0 && value < 100)
  assert.ok(moving.length >= 1, `the bar never moved between 0 and 100: ${[...seen]}`)
  assert.match(await first.getByTestId('batch-counts').textContent(), /1201 of 1201 requests · 1200 done · 1 failed/)
  const fetchFile = async (label) => {
    const [download] = await Promise.all([page.waitForEvent('download'), first.getByRole('button', { name: label }).click()])
    return readFileSync(await download.path(), 'utf8').trim().split('\n').map((line) => JSON.parse(line))
  }
  const output = await fetchFile('Download output')
  assert.equal(output.length, 1200)
  assert.equal(output[0].response.body.data[0].embedding.length, 384)
  const failed = await fetchFile('Download errors')
  assert.deepEqual(failed.map((line) => [line.custom_id, line.response.status_code]), [['bad', 400]])
  step(`batch of 1201 lines: the bar moved through ${moving.length} values; output 1200 lines, errors 1`)

  const firstId = await first.getAttribute('data-batch-id')
  await startBatch(lines(2000, 'toad').join('\n'))
  const second = page.getByTestId('batches').locator('li').first()
  for (let i = 0; i < 240; i++) {
    if ((await second.getAttribute('data-batch-id')) !== firstId && (await second.getAttribute('data-status')) === 'in_progress') break
    await page.waitForTimeout(250)
  }
  assert.equal(await second.getAttribute('data-status'), 'in_progress')
  await second.getByRole('button', { name: 'Cancel' }).click()
  for (let i = 0; i < 120 && (await second.getAttribute('data-status')) !== 'cancelled'; i++) await page.waitForTimeout(250)
  assert.equal(await second.getAttribute('data-status'), 'cancelled')
  await accessible(page, 'batches')
  await fitsPhone(page, 'batches')
  await shot(page, 'batches')
  step('a running batch was cancelled from the page')

  // The usage chart shows these calls.
  // Usage rows reach the database through each worker's spool within a flush interval
  // (200 ms): a page opened at once may be a moment behind, as it would be for a user.
  await page.getByRole('link', { name: 'Usage' }).click()
  let calls = 0
  for (let attempt = 0; attempt < 10 && calls < 3; attempt++) {
    if (attempt) {
      await page.waitForTimeout(500)
      await page.reload()
    }
    await page.getByTestId('usage-chart').waitFor()
    const totals = await page.getByTestId('usage-totals').textContent()
    calls = Number(totals.match(/Calls([\d,]+)/)[1].replace(/,/g, ''))
  }
  // The token's /v1/models, the session's embeddings, chat and models at least.
  assert.ok(calls >= 3, `usage shows ${calls} calls`)
  assert.ok((await page.locator('[data-testid=usage-chart] .recharts-bar-rectangle').count()) > 0, 'no bars drawn')
  // Batch lines apart from calls, per model too; errors and 429s on an axis of their own.
  const batchLines = Number((await page.getByTestId('usage-totals').textContent()).match(/Batch lines([\d,]+)/)[1].replace(/,/g, ''))
  assert.ok(batchLines >= 1201, `usage shows ${batchLines} batch lines`)
  const perModel = page.getByTestId('usage-by-model')
  const minilm = (await perModel.getByRole('row', { name: /all-minilm-l6-v2/ }).locator('td').allTextContents()).map((text) => text.replace(/,/g, ''))
  assert.ok(Number(minilm[2]) >= 1200 && Number(minilm[1]) >= 2, `all-minilm-l6-v2: ${minilm}`)
  await perModel.getByRole('row', { name: /storyteller/ }).waitFor()
  assert.match(await perModel.getByRole('row', { name: /ocr-en/ }).textContent(), /[1-9]\d* images/)
  assert.equal(await page.locator('[data-testid=usage-chart] .recharts-yAxis').count(), 2)
  await page.getByRole('cell', { name: 'batch (web session)' }).first().waitFor()
  await page.getByRole('cell', { name: 'e2e laptop' }).first().waitFor()
  await accessible(page, 'usage')
  await fitsPhone(page, 'usage')
  await shot(page, 'usage')
  step(`usage chart shows ${calls} calls`)

  // Past the 8 s access token, the next call is refreshed without the user noticing. The
  // shell's own 5 s check may be that call, so count refreshes from before the wait.
  const before = refreshes.length
  const tokenFrom = Math.max(signedInAt, lastRefreshAt)
  await page.waitForTimeout(Math.max(0, 9_500 - (Date.now() - tokenFrom)))
  await page.getByRole('button', { name: '30 days' }).click()
  await page.getByRole('heading', { name: 'Calls per day, by source (last 30 days)' }).waitFor()
  await page.getByTestId('usage-chart').waitFor()
  assert.ok(refreshes.length > before, 'the expired access token was not refreshed')
  assert.ok(refreshes.length >= 1 && refreshes.every((status) => status === 200), `refreshes: ${refreshes}`)
  assert.equal(new URL(page.url()).pathname, '/usage')
  step(`access token refreshed silently ${refreshes.length} time(s)`)

  // Revoke the token: it gets 401 at once.
  await page.getByRole('link', { name: 'API tokens' }).click()
  await page.getByRole('row', { name: /e2e laptop/ }).getByRole('button', { name: 'Revoke' }).click()
  await page.getByRole('dialog').getByRole('button', { name: 'Revoke token' }).click()
  await page.getByText(/^revoked /).waitFor()
  const revoked = await fetch(`${BASE}/v1/models`, { headers: { Authorization: `Bearer ${token}` } })
  assert.equal(revoked.status, 401)
  step('revoked token gets 401')

  // Sign out.
  await page.getByRole('button', { name: 'Sign out' }).click()
  await page.getByText('You are signed out.').waitFor()
  await page.goto(`${BASE}/tokens`)
  await page.waitForURL(/\/login/)
  step('signed out; private pages send to the login')

  // An admin disables the user; the user's open page goes to the login with a message.
  await signIn(page, USER)
  const adminContext = await browser.newContext({ viewport: { width: 1280, height: 900 } })
  const adminPage = await adminContext.newPage()
  await signIn(adminPage, ADMIN)
  await adminPage.getByRole('link', { name: 'Admin' }).click()
  await adminPage.getByLabel('Search users by email or name').fill(USER.email)
  await adminPage.getByRole('button', { name: 'Search' }).click()
  const userRow = adminPage.getByTestId(`user-${USER.email}`)
  await userRow.waitFor()
  await adminPage.getByLabel('Search users by email or name').fill('')
  await adminPage.getByRole('button', { name: 'Search' }).click()
  await adminPage.getByText(/Page 1 of 1/).waitFor()
  await adminPage.getByLabel("Trace id (from a user's error message)").fill('d10d51d5a953409fa870b3718d62e703')
  const kibana = await adminPage.getByRole('link', { name: 'Open in Kibana' }).getAttribute('href')
  assert.ok(kibana.startsWith('https://kibana.modelgate.test/app/discover#/?'), kibana)
  assert.ok(decodeURI(kibana).includes('trace.id : "d10d51d5a953409fa870b3718d62e703"'), kibana)
  step('a trace id links to Kibana Discover')
  // The admin's own row offers no role or access control to refuse afterwards.
  const ownRow = adminPage.getByTestId(`user-${ADMIN.email}`)
  await ownRow.getByText('admin (you)').waitFor()
  assert.equal(await ownRow.getByRole('combobox').count(), 0)
  assert.equal(await ownRow.getByRole('button', { name: 'Disable' }).count(), 0)
  // A limit: its format is stated, and setting it says so.
  await adminPage.getByText(/Rate limit: Calls per period, e\.g\. 100\/minute/).waitFor()
  await userRow.getByLabel(`Rate limit of ${USER.email}`).fill('600/minute')
  await userRow.getByRole('button', { name: 'Set' }).click()
  await userRow.getByRole('status').getByText('Limit set: 600/minute.').waitFor()
  // Usage across users names people.
  const across = adminPage.getByTestId('usage-per-user')
  await across.getByRole('cell', { name: USER.email }).waitFor()
  assert.doesNotMatch(await across.textContent(), /#\d/)
  step('admin: no controls on the own row, limit confirmed, usage by email')
  await accessible(adminPage, 'admin')
  await fitsPhone(adminPage, 'admin')
  await shot(adminPage, 'admin')
  // Disabling asks first.
  await userRow.getByRole('button', { name: 'Disable' }).click()
  const confirm = adminPage.getByRole('dialog', { name: `Disable ${USER.email}?` })
  await confirm.getByRole('button', { name: 'Keep enabled' }).click()
  await confirm.waitFor({ state: 'detached' })
  await userRow.getByRole('button', { name: 'Disable' }).click()
  await confirm.getByRole('button', { name: 'Disable account' }).click()
  await userRow.getByRole('button', { name: 'Enable' }).waitFor()
  await page.waitForURL(/\/login/, { timeout: 15_000 })
  await page.getByText('This account is disabled.').waitFor()
  step('a disabled user is sent to the login with a message')
  await adminContext.close()
  console.log('e2e: every step passed')
} catch (error) {
  await page.screenshot({ path: join(SHOTS, 'failure.png'), fullPage: true }).catch(() => {})
  console.log(`at ${page.url()}`)
  throw error
} finally {
  await browser.close()
}

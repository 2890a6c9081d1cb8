// The official OpenAI Node client against a live modelgate: create, stream, and a refusal.
// Run by tests/inference/test_responses_node.py with MODELGATE_URL and MODELGATE_TOKEN set;
// prints one JSON object for the test to check.
import OpenAI from 'openai'

const client = new OpenAI({
  baseURL: `${process.env.MODELGATE_URL}/v1`,
  apiKey: process.env.MODELGATE_TOKEN,
  maxRetries: 0,
})

const created = await client.responses.create({
  model: 'storyteller',
  input: [{ role: 'user', content: 'Once upon a time' }],
  max_output_tokens: 5,
  temperature: 0, // greedy: a sampled story may end within 5 tokens (completed, not incomplete)
})

const events = []
const stream = await client.responses.create({
  model: 'storyteller',
  input: 'A frog',
  max_output_tokens: 6,
  temperature: 0,
  stream: true,
})
for await (const event of stream) events.push(event)

let refusal = null
try {
  await client.responses.create({ model: 'storyteller', input: 'x', tools: [{ type: 'web_search' }] })
} catch (error) {
  refusal = {
    badRequest: error instanceof OpenAI.BadRequestError,
    status: error.status,
    param: error.param,
  }
}

console.log(JSON.stringify({ created, events, refusal }))

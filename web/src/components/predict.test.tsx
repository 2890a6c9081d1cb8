import { QueryClient, QueryClientProvider } from '@tanstack/react-query'
import { fireEvent, render, screen } from '@testing-library/react'
import userEvent from '@testing-library/user-event'

import { HandlerPlayground } from './predict'

const OCR = {
  id: 'ocr-en',
  task: 'handler',
  device: 'cpu',
  schema: {
    inputs: [{ name: 'image', kind: 'image', required: true, formats: ['png', 'jpeg', 'webp'], max_bytes: 10_000_000 }],
    outputs: [{ name: 'lines', kind: 'json' }, { name: 'text', kind: 'text' }],
    units: 'images',
  },
}

function renderCard(models: object[]) {
  return render(
    <QueryClientProvider client={new QueryClient()}>
      <HandlerPlayground models={models} />
    </QueryClientProvider>,
  )
}

test('without a handler model, the card says how to serve one', () => {
  renderCard([{ id: 'storyteller', task: 'text-generation' }])
  expect(screen.getByText(/No handler model is being served/)).toBeInTheDocument()
})

test("an image dropped on the form is previewed and named in the request's curl", async () => {
  renderCard([{ id: 'storyteller', task: 'text-generation' }, OCR])
  expect(screen.getByLabelText('Model')).toHaveValue('ocr-en')
  await userEvent.click(screen.getByRole('button', { name: 'Run the model' }))
  expect(screen.getByText('Choose or drop an image.')).toBeInTheDocument()
  const file = new File([new Uint8Array([137, 80, 78, 71])], 'page.png', { type: 'image/png' })
  fireEvent.drop(screen.getByTestId('drop-image'), { dataTransfer: { files: [file] } })
  expect(await screen.findByRole('img', { name: 'Preview of page.png' })).toHaveAttribute('src', expect.stringMatching(/^data:image\/png;base64,/))
  expect(screen.getByLabelText('Predict request as curl')).toHaveTextContent('-F image=@page.png')
  expect(screen.getByLabelText('image (image)')).toHaveAttribute('accept', 'image/png,image/jpeg,image/webp')
})

import { render, screen } from '@testing-library/react'
import userEvent from '@testing-library/user-event'

import { ApiError } from '../lib/errors'
import { ErrorNotice, Field, fieldError } from './ui'

const error = new ApiError({
  status: 400,
  code: 'validation_error',
  message: 'Some fields are invalid.',
  traceId: 'abc123',
  fields: { email: ['Not a valid email address.'] },
})

test('an error shows its message and the trace id to quote, with a copy button', async () => {
  const writeText = vi.fn().mockResolvedValue(undefined)
  Object.defineProperty(navigator, 'clipboard', { value: { writeText }, configurable: true })
  render(<ErrorNotice error={error} />)
  const alert = screen.getByRole('alert')
  expect(alert).toHaveTextContent('Some fields are invalid.')
  expect(alert).toHaveTextContent('Quote this id when you report a problem: abc123')
  await userEvent.click(screen.getByRole('button', { name: 'Copy id' }))
  expect(writeText).toHaveBeenCalledWith('abc123')
  expect(await screen.findByRole('button', { name: 'Copied' })).toBeInTheDocument()
})

test('the fields an error names are listed only where asked', () => {
  const { rerender } = render(<ErrorNotice error={error} />)
  expect(screen.queryByText('Not a valid email address.', { exact: false })).toBeNull()
  rerender(<ErrorNotice error={error} fields />)
  expect(screen.getByRole('alert')).toHaveTextContent('email: Not a valid email address.')
})

test("a field shows the server's error beside it, tied to the input", () => {
  render(<Field label="Email" name="email" error={fieldError(error, 'email')} />)
  const input = screen.getByLabelText('Email')
  expect(input).toHaveAttribute('aria-invalid', 'true')
  expect(input).toHaveAccessibleDescription('Not a valid email address.')
})

test('a client-side error wins over the server one', () => {
  expect(fieldError(error, 'email', { message: 'Enter a valid email address.' })).toBe('Enter a valid email address.')
  expect(fieldError(error, 'password')).toBeUndefined()
})

import { useNavigate } from '@tanstack/react-router'

import { session } from './api'

/** Forget the session here and show the login page with `reason` (a sign-out the user asked for). */
export function useSignedOut(): (reason: string) => void {
  const navigate = useNavigate()
  return (reason) => {
    session.clear()
    navigate({ to: '/login', search: { reason } })
  }
}

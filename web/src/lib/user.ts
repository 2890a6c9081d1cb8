import { useSyncExternalStore } from 'react'

import type { UserOut } from '../client/types.gen'
import { session } from './api'

let current: UserOut | null = null
session.onUser((user) => {
  current = user
})

/** The signed-in user, re-rendering when the session starts or ends. */
export function useUser(): UserOut | null {
  return useSyncExternalStore(
    (notify) => session.onUser(() => notify()),
    () => current,
  )
}

export function currentUser(): UserOut | null {
  return current
}

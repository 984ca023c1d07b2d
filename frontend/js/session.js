// A person's session with the stage's Cognito user pool (docs/AUTH.md).
//
// The page talks to the pool's own endpoint (config.js `userPool`: Cognito's regional address, or
// the local emulator), never through the API. Tokens live in sessionStorage: this tab only, gone
// when it closes, and readable by no other origin. The password is sent once and never kept.
// The access token is refreshed shortly before it expires; the pool rotates the refresh token on
// every use, so the newest one is kept.

const STORAGE_KEY = 'items-ui.session';
const REFRESH_MARGIN_MS = 60_000;
const TIMEOUT_MS = 15_000;

export class PoolError extends Error {
  constructor(type, message) {
    super(message);
    this.name = 'PoolError';
    this.type = type; // Cognito's error name, e.g. NotAuthorizedException, or 'network'
  }
}

// What a person should read for the pool's errors (its own messages are terse or technical).
const MESSAGES = {
  NotAuthorizedException: 'The e-mail address or password is not right.',
  UserNotFoundException: 'The e-mail address or password is not right.',
  UserNotConfirmedException: 'This account is not confirmed yet: enter the code we e-mailed you.',
  UsernameExistsException: 'An account with this e-mail address exists already. Sign in, or reset the password.',
  CodeMismatchException: 'That code is not right. Check the e-mail and try again.',
  ExpiredCodeException: 'That code has expired. Ask for a new one.',
  InvalidPasswordException: 'Choose a password of at least 12 characters with upper and lower case letters and a digit.',
  LimitExceededException: 'Too many attempts. Wait a few minutes and try again.',
  TooManyRequestsException: 'Too many attempts. Wait a moment and try again.',
  TooManyFailedAttemptsException: 'Too many attempts. Wait a few minutes and try again.',
  PasswordResetRequiredException: 'This password must be reset: use “Forgot password”.',
};

export function friendlyMessage(error) {
  if (error instanceof PoolError) return MESSAGES[error.type] ?? error.message;
  return String(error?.message ?? error);
}

export function createSession(poolConfig) {
  const pool = poolConfig && poolConfig.clientId && poolConfig.endpoint ? poolConfig : null;
  let state = load();
  let refreshing = null;
  const listeners = new Set();

  function load() {
    try {
      const value = JSON.parse(sessionStorage.getItem(STORAGE_KEY) ?? 'null');
      if (value && typeof value.accessToken === 'string' && typeof value.refreshToken === 'string') return value;
    } catch {
      // Unreadable storage: no session.
    }
    return null;
  }

  function store(next) {
    state = next;
    try {
      if (next) sessionStorage.setItem(STORAGE_KEY, JSON.stringify(next));
      else sessionStorage.removeItem(STORAGE_KEY);
    } catch {
      // Storage blocked: the session lasts as long as the page.
    }
    for (const listener of listeners) listener(next);
  }

  async function call(target, body) {
    if (!pool) throw new PoolError('config', 'This page has no user pool to sign in to.');
    let response;
    try {
      response = await fetch(pool.endpoint.replace(/\/+$/, '') + '/', {
        method: 'POST',
        headers: {
          'Content-Type': 'application/x-amz-json-1.1',
          'X-Amz-Target': `AWSCognitoIdentityProviderService.${target}`,
        },
        body: JSON.stringify(body),
        signal: AbortSignal.timeout(TIMEOUT_MS),
      });
    } catch {
      throw new PoolError('network', 'Cannot reach the sign-in service. Check your connection and try again.');
    }
    const data = await response.json().catch(() => ({}));
    if (response.ok) return data;
    const type = String(data.__type ?? data.code ?? 'Error').split('#').pop();
    throw new PoolError(type, String(data.message ?? data.Message ?? `The sign-in service answered ${response.status}.`));
  }

  function claims(token) {
    try {
      const part = token.split('.')[1].replace(/-/g, '+').replace(/_/g, '/');
      return JSON.parse(atob(part + '='.repeat((4 - (part.length % 4)) % 4)));
    } catch {
      return {};
    }
  }

  function signedIn(result, email) {
    const idClaims = claims(result.IdToken ?? '');
    store({
      accessToken: result.AccessToken,
      refreshToken: result.RefreshToken ?? state?.refreshToken,
      expiresAt: Date.now() + Number(result.ExpiresIn ?? 900) * 1000,
      email: idClaims.email ?? email ?? state?.email ?? '',
    });
  }

  async function refresh() {
    if (!state) return null;
    const current = state;
    try {
      const data = await call('GetTokensFromRefreshToken', { ClientId: pool.clientId, RefreshToken: current.refreshToken });
      signedIn(data.AuthenticationResult ?? {}, current.email);
      return state.accessToken;
    } catch (error) {
      if (error.type === 'network') throw error;
      store(null); // the session ended (revoked, expired, signed out elsewhere)
      return null;
    }
  }

  return {
    available: Boolean(pool),
    get email() {
      return state?.email ?? '';
    },
    get active() {
      return Boolean(state);
    },
    onChange(listener) {
      listeners.add(listener);
    },

    // A current access token (refreshed when it is about to expire), or null when signed out.
    async accessToken({ forceRefresh = false } = {}) {
      if (!state) return null;
      if (!forceRefresh && state.expiresAt - Date.now() > REFRESH_MARGIN_MS) return state.accessToken;
      refreshing ??= refresh().finally(() => {
        refreshing = null;
      });
      return refreshing;
    },

    // Resolves to {done: true} or to {challenge: 'NEW_PASSWORD_REQUIRED', session} for an invited
    // person's first sign-in with a temporary password.
    async signIn(email, password) {
      const data = await call('InitiateAuth', {
        ClientId: pool.clientId, AuthFlow: 'USER_PASSWORD_AUTH', AuthParameters: { USERNAME: email, PASSWORD: password },
      });
      if (data.ChallengeName) return { challenge: data.ChallengeName, session: data.Session, email };
      signedIn(data.AuthenticationResult, email);
      return { done: true };
    },

    async completeNewPassword(challenge, newPassword) {
      const data = await call('RespondToAuthChallenge', {
        ClientId: pool.clientId, ChallengeName: 'NEW_PASSWORD_REQUIRED', Session: challenge.session,
        ChallengeResponses: { USERNAME: challenge.email, NEW_PASSWORD: newPassword },
      });
      signedIn(data.AuthenticationResult, challenge.email);
    },

    async signUp(email, password) {
      await call('SignUp', {
        ClientId: pool.clientId, Username: email, Password: password, UserAttributes: [{ Name: 'email', Value: email }],
      });
    },

    async confirmSignUp(email, code) {
      await call('ConfirmSignUp', { ClientId: pool.clientId, Username: email, ConfirmationCode: code });
    },

    async resendCode(email) {
      await call('ResendConfirmationCode', { ClientId: pool.clientId, Username: email });
    },

    async forgotPassword(email) {
      await call('ForgotPassword', { ClientId: pool.clientId, Username: email });
    },

    async confirmForgotPassword(email, code, password) {
      await call('ConfirmForgotPassword', { ClientId: pool.clientId, Username: email, ConfirmationCode: code, Password: password });
    },

    // Ends the session at the pool (its tokens stop being honoured) and forgets it here, even
    // when the pool cannot be reached.
    async signOut() {
      const token = state?.accessToken;
      store(null);
      if (token) {
        try {
          await call('GlobalSignOut', { AccessToken: token });
        } catch {
          // Already ended or unreachable: nothing more to do here.
        }
      }
    },

    // Forget the session without calling the pool (it was refused as expired or revoked).
    forget() {
      store(null);
    },
  };
}

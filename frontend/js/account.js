// Signing people in: the header's account area and the sign-in dialog (sign in, create an account
// with the e-mailed code, forgot password, a first new password for invited people).
//
// Nothing here touches the page's work: when a session ends mid-edit, the dialog opens over the
// page, and signing in again as the same person carries on where it stopped.

import { announce } from './banner.js';
import { $ } from './dom.js';
import { friendlyMessage } from './session.js';

const STEPS = {
  signin: { title: 'Sign in', fields: ['email', 'password'], submit: 'Sign in' },
  signup: { title: 'Create an account', fields: ['email', 'new-password'], submit: 'Create account' },
  confirm: { title: 'Confirm your e-mail address', fields: ['email', 'code'], submit: 'Confirm' },
  forgot: { title: 'Reset your password', fields: ['email'], submit: 'Send a code' },
  reset: { title: 'Choose a new password', fields: ['email', 'code', 'new-password'], submit: 'Set password' },
  newpassword: { title: 'Choose your password', fields: ['new-password'], submit: 'Set password' },
};
const LINKS = {
  signin: [['signup', 'Create an account'], ['forgot', 'Forgot password?']],
  signup: [['signin', 'I have an account']],
  confirm: [['resend', 'Send the code again'], ['signin', 'Back to sign in']],
  forgot: [['reset', 'I have a code'], ['signin', 'Back to sign in']],
  reset: [['signin', 'Back to sign in']],
  newpassword: [],
};
const PASSWORD_HINT = 'At least 12 characters, with upper and lower case letters and a digit.';

export function createAccount({ session, onSignedIn, onSignedOut }) {
  const dialog = $('#account-dialog');
  const form = $('#account-form');
  let step = 'signin';
  let challenge = null;
  let pendingPassword = '';
  let opener = null;

  function field(name) {
    return $(`#account-${name}`);
  }

  function render(next, { message = '', keep = true } = {}) {
    step = next;
    const spec = STEPS[step];
    $('#account-heading').textContent = spec.title;
    for (const name of ['email', 'password', 'code', 'new-password']) {
      const wrapper = field(name).closest('.field');
      wrapper.hidden = !spec.fields.includes(name);
      field(name).required = spec.fields.includes(name);
      if (!keep && name !== 'email') field(name).value = '';
    }
    $('#account-submit').textContent = spec.submit;
    const links = $('#account-links');
    links.replaceChildren(...LINKS[step].map(([target, label]) => {
      const button = document.createElement('button');
      button.type = 'button';
      button.className = 'link';
      button.dataset.step = target;
      button.textContent = label;
      return button;
    }));
    showMessage(message);
    showError('');
    const first = spec.fields.find((name) => !field(name).value) ?? spec.fields[0];
    field(first).focus();
  }

  function showError(text) {
    const output = $('#account-error');
    output.textContent = text;
    output.hidden = !text;
  }

  function showMessage(text) {
    const output = $('#account-message');
    output.textContent = text;
    output.hidden = !text;
  }

  function open(next = 'signin', message = '') {
    if (!dialog.open) {
      opener = document.activeElement;
      dialog.showModal();
    }
    render(next, { message, keep: true });
  }

  function close() {
    dialog.close();
  }

  async function finishSignIn(email, password) {
    const result = await session.signIn(email, password);
    if (result.challenge === 'NEW_PASSWORD_REQUIRED') {
      challenge = result;
      render('newpassword', { message: 'Welcome! Choose the password you will sign in with from now on.', keep: false });
      return false;
    }
    if (result.challenge) throw new Error(`The sign-in service asked for ${result.challenge}, which this page does not support.`);
    return true;
  }

  async function submit() {
    const email = field('email').value.trim();
    const password = field('password').value;
    const code = field('code').value.trim();
    const newPassword = field('new-password').value;
    for (const name of STEPS[step].fields) {
      if (!field(name).value.trim()) {
        showError('Fill in every field.');
        field(name).focus();
        return;
      }
    }
    if (STEPS[step].fields.includes('new-password') && !/^(?=.*[a-z])(?=.*[A-Z])(?=.*\d).{12,}$/.test(newPassword)) {
      showError(PASSWORD_HINT);
      field('new-password').focus();
      return;
    }
    let done = false;
    switch (step) {
      case 'signin':
        done = await finishSignIn(email, password);
        break;
      case 'signup':
        await session.signUp(email, newPassword);
        pendingPassword = newPassword;
        render('confirm', { message: `We sent a code to ${email}. Enter it to confirm your address.`, keep: false });
        return;
      case 'confirm':
        await session.confirmSignUp(email, code);
        if (pendingPassword) {
          done = await finishSignIn(email, pendingPassword);
          pendingPassword = '';
        } else {
          render('signin', { message: 'Your address is confirmed. Sign in.', keep: false });
          return;
        }
        break;
      case 'forgot':
        await session.forgotPassword(email);
        render('reset', { message: `If ${email} has an account, we sent it a code.`, keep: false });
        return;
      case 'reset':
        await session.confirmForgotPassword(email, code, newPassword);
        done = await finishSignIn(email, newPassword);
        break;
      case 'newpassword':
        await session.completeNewPassword(challenge, newPassword);
        challenge = null;
        done = true;
        break;
      default:
        return;
    }
    if (done) {
      close();
      announce(`Signed in as ${session.email}.`);
      onSignedIn();
    }
  }

  form.addEventListener('submit', async (event) => {
    if (event.submitter?.value === 'cancel') return;
    event.preventDefault();
    const button = $('#account-submit');
    button.disabled = true;
    try {
      await submit();
    } catch (error) {
      showError(friendlyMessage(error));
      if (error?.type === 'UserNotConfirmedException') render('confirm', { message: friendlyMessage(error) });
    } finally {
      button.disabled = false;
    }
  });

  $('#account-links').addEventListener('click', async (event) => {
    const target = event.target.closest('button[data-step]')?.dataset.step;
    if (!target) return;
    if (target === 'resend') {
      try {
        await session.resendCode(field('email').value.trim());
        showMessage('We sent a new code.');
      } catch (error) {
        showError(friendlyMessage(error));
      }
      return;
    }
    render(target);
  });

  dialog.addEventListener('close', () => {
    const target = opener instanceof HTMLElement && opener.isConnected && opener !== document.body ? opener : $('#account-button');
    target.focus();
  });

  function renderHeader() {
    const button = $('#account-button');
    button.hidden = !session.available;
    $('#account-name').textContent = session.active ? session.email : '';
    $('#account-name').hidden = !session.active;
    button.textContent = session.active ? 'Sign out' : 'Sign in';
    button.dataset.testid = session.active ? 'sign-out' : 'sign-in';
  }

  $('#account-button').addEventListener('click', async () => {
    if (!session.active) {
      open('signin');
      return;
    }
    await session.signOut();
    announce('Signed out.');
    onSignedOut();
  });

  session.onChange(renderHeader);
  renderHeader();

  return {
    open,
    // The API refused the session's token and it could not be renewed: ask to sign in again,
    // over the page, so nothing typed is lost.
    sessionEnded() {
      open('signin', 'Your session has ended. Sign in again to carry on; nothing you typed is lost.');
    },
  };
}

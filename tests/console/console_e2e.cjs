// The console end to end in Chromium, driven by playwright-core. Run by
// crates/herald/tests/it/console_browser.rs, which starts Herald, seeds it
// and passes what it seeded in the environment. CommonJS so that NODE_PATH
// finds playwright-core outside the clone.
'use strict';
const { chromium } = require('playwright-core');

const env = process.env;
const base = env.HERALD_URL;
const shots = env.SCREENSHOT_DIR;
const DEADLINE_MS = 20000;

function check(condition, message) {
  if (!condition) throw new Error(message);
}

async function shot(page, name) {
  await page.screenshot({ path: `${shots}/${name}.png`, fullPage: true });
}

/** Reloads until `condition` holds, for at most DEADLINE_MS. */
async function eventually(page, what, condition) {
  const until = Date.now() + DEADLINE_MS;
  for (;;) {
    if (await condition()) return;
    if (Date.now() > until) throw new Error(`timed out waiting for ${what}`);
    await page.waitForTimeout(200);
    await page.reload();
  }
}

async function operator(browser) {
  const context = await browser.newContext({ viewport: { width: 1280, height: 900 } });
  const page = await context.newPage();

  // Sign in.
  await page.goto(`${base}/console`);
  check(page.url().endsWith('/console/login'), `signed out, /console leads to sign-in, not ${page.url()}`);
  await page.getByLabel('Admin API token').fill(env.HERALD_TOKEN);
  await shot(page, '01-login');
  await page.getByRole('button', { name: 'Sign in' }).click();
  await page.waitForURL('**/console/apps');
  await shot(page, '02-applications');
  console.log('signed in');

  // Find the failed message.
  await page.getByRole('link', { name: 'Acme', exact: true }).click();
  await page.waitForURL(`**/console/app/${env.ACME_APP}`);
  await shot(page, '03-application');
  await page.getByLabel('Delivery status').selectOption('fail');
  await page.getByRole('button', { name: 'Search' }).click();
  await page.waitForURL('**status=fail**');
  const rows = page.locator('#messages tbody tr');
  check((await rows.count()) === 1, `one failed message is listed, not ${await rows.count()}`);
  check((await rows.first().getAttribute('data-message')) === env.FAILED_MSG, 'the failed message is the one seeded');
  await shot(page, '04-failed-messages');
  console.log('found the failed message');

  // Open its attempts: failed ones, payload escaped.
  await page.getByRole('link', { name: env.FAILED_MSG }).click();
  await page.waitForURL(`**/msg/${env.FAILED_MSG}`);
  const failedAttempts = await page.locator('tr.attempt[data-status="fail"]').count();
  check(failedAttempts >= 1, 'the failed attempts are listed');
  check((await page.locator('#payload').innerText()).includes('<script>alert(1)</script>'), 'the payload shows as text');
  check((await page.locator('#payload script').count()) === 0, 'the payload is not markup');
  await shot(page, '05-message-failed-attempts');

  // Press resend; the new attempt succeeds.
  const delivery = page.locator(`#deliveries tr[data-endpoint="${env.FLAKY_ENDPOINT}"]`);
  await delivery.getByRole('button', { name: 'Resend' }).click();
  await page.waitForURL('**done=resent');
  await eventually(page, 'the resent attempt to succeed', async () =>
    (await page.locator('tr.attempt[data-status="success"]').count()) === 1);
  const success = page.locator('tr.attempt[data-status="success"]');
  check((await success.innerText()).includes('200'), 'the new attempt answered 200');
  check((await success.innerText()).includes('manual'), 'the new attempt is manual');
  check((await page.locator('tr.attempt[data-status="fail"]').count()) === failedAttempts, 'the failed attempts stay listed');
  await shot(page, '06-message-resent');
  console.log('resent; the new attempt succeeded');

  // Rotate the endpoint's secret.
  await delivery.getByRole('link').first().click();
  await page.waitForURL(`**/endpoint/${env.FLAKY_ENDPOINT}`);
  await shot(page, '07-endpoint');
  await page.getByRole('link', { name: 'Reveal secret' }).click();
  const before = await page.locator('#secret').innerText();
  check(before.startsWith('whsec_'), 'the secret is revealed');
  await page.getByRole('button', { name: 'Rotate secret' }).click();
  await page.waitForURL('**done=rotated');
  check((await page.locator('#secret').count()) === 0, 'after rotating, the secret is hidden again');
  await page.getByRole('link', { name: 'Reveal secret' }).click();
  const after = await page.locator('#secret').innerText();
  check(after.startsWith('whsec_') && after !== before, 'the secret changed');
  console.log('rotated the secret');

  // Send a test event of a chosen type.
  await page.goto(`${base}/console/app/${env.ACME_APP}/endpoint/${env.FLAKY_ENDPOINT}`);
  await page.getByLabel('Event type').fill('invoice.paid');
  await page.getByRole('button', { name: 'Send test event' }).click();
  await page.waitForURL('**done=sent');
  check((await page.getByRole('status').innerText()).includes('Test event sent'), 'the page confirms the test event');
  await shot(page, '08-endpoint-after-test-event');
  console.log('sent a test event');

  // Keyboard: the search form is reachable and usable without a mouse.
  await page.goto(`${base}/console/app/${env.ACME_APP}`);
  await page.getByLabel('Message id or eventId').focus();
  await page.keyboard.type(env.FAILED_MSG);
  await page.keyboard.press('Enter');
  await page.waitForURL('**q=**');
  check((await page.locator('#messages tbody tr').count()) === 1, 'search by id finds the message');

  await page.goto(`${base}/console/event-types`);
  check((await page.getByText('invoice.paid').count()) >= 1, 'event types are listed');
  await shot(page, '09-event-types');
  await page.goto(`${base}/console/sources`);
  await page.getByRole('link', { name: 'Payments' }).click();
  check((await page.locator('#ingest-url').innerText()).includes('/in/src_'), 'the source shows its URL');
  check((await page.locator('td.reason').count()) >= 1, 'the rejected request is listed with its reason');
  check(!(await page.content()).includes('whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw'), 'the verifier secret is hidden');
  await shot(page, '10-source');
  await context.close();
}

async function phone(browser) {
  const context = await browser.newContext({ viewport: { width: 390, height: 844 }, isMobile: true });
  const page = await context.newPage();
  await page.goto(env.PORTAL_URL);
  await shot(page, '11-portal-phone');
  const width = await page.evaluate(() => document.documentElement.scrollWidth);
  check(width <= 400, `the page fits a phone's width (${width}px)`);
  await context.close();
}

async function tenant(browser) {
  const context = await browser.newContext({ viewport: { width: 1280, height: 900 } });
  const page = await context.newPage();
  const portal = env.PORTAL_URL;
  const response = await page.goto(portal);
  check(response.status() === 200, `the portal link opens (${response.status()})`);
  const text = await page.content();
  check(text.includes(env.FAILED_MSG), 'the portal shows its app\'s messages');
  check(!text.includes('Globex') && !text.includes(env.OTHER_MSG) && !text.includes(env.OTHER_ENDPOINT),
    'the portal shows nothing of another app');
  check((await page.getByRole('button', { name: 'Sign out' }).count()) === 0, 'no operator navigation');
  await shot(page, '12-portal');

  // Editing ids in the URL reaches nothing of the other app.
  for (const path of [`/endpoint/${env.OTHER_ENDPOINT}`, `/msg/${env.OTHER_MSG}`, `/endpoint/${env.OTHER_ENDPOINT}/edit`]) {
    const answer = await page.goto(portal + path);
    check(answer.status() === 404, `${path} of another app answers 404, not ${answer.status()}`);
    check(!(await page.content()).includes('Globex'), `${path} shows nothing of another app`);
  }
  const forged = await page.goto(portal.replace(env.ACME_APP, env.OTHER_APP));
  check(forged.status() === 401, `a token edited to another app is refused (${forged.status()})`);
  await page.goto(`${base}/console/app/${env.OTHER_APP}`);
  check(page.url().endsWith('/console/login'), 'operator pages ask the tenant to sign in');
  console.log('the portal reaches no other app');

  // The tenant adds an endpoint, sees its secret, and retries a delivery.
  await page.goto(portal);
  await page.getByRole('link', { name: 'Add an endpoint' }).click();
  await page.getByLabel('URL (https://…)').fill('https://hooks.acme.example/herald');
  await page.getByLabel('Event types (comma-separated; empty for all)').fill('invoice.paid');
  await page.getByRole('button', { name: 'Create endpoint' }).click();
  await page.waitForURL('**done=created');
  check(page.url().startsWith(portal), 'the new endpoint stays in the portal');
  await page.getByRole('link', { name: 'Reveal secret' }).click();
  check((await page.locator('#secret').innerText()).startsWith('whsec_'), 'the tenant sees its secret');
  await page.getByRole('link', { name: 'Edit endpoint' }).click();
  await page.getByLabel('Description').fill('Billing hooks');
  await page.getByRole('button', { name: 'Save' }).click();
  await page.waitForURL('**done=updated');
  check((await page.content()).includes('Billing hooks'), 'the edit is saved');
  await shot(page, '13-portal-endpoint');
  await page.goto(`${portal}/msg/${env.FAILED_MSG}`);
  const attemptsBefore = await page.locator('tr.attempt').count();
  await page.locator(`#deliveries tr[data-endpoint="${env.FLAKY_ENDPOINT}"]`).getByRole('button', { name: 'Resend' }).click();
  await page.waitForURL('**done=resent');
  await eventually(page, 'the tenant\'s retry', async () =>
    (await page.locator('tr.attempt').count()) === attemptsBefore + 1);
  await shot(page, '14-portal-message');
  console.log('the tenant added and edited an endpoint, saw its secret and retried');
  await context.close();
}

(async () => {
  const browser = await chromium.launch({
    executablePath: env.HERALD_CHROMIUM || '/usr/bin/chromium',
    args: ['--no-sandbox', '--headless', '--disable-gpu', '--disable-background-networking'],
  });
  try {
    await operator(browser);
    await phone(browser);
    await tenant(browser);
  } finally {
    await browser.close();
  }
  console.log(`screenshots in ${shots}`);
})().catch((error) => {
  console.error(error);
  process.exit(1);
});

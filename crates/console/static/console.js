// Coffer console: small enhancements, hand-written (no build step). Every page works without
// this file; with it, the Region switcher switches on change, an open Actions menu pauses the
// replication section's refresh (so the menu does not close under the pointer), Escape
// closes an open menu, and a lost connection to the server is said out loud (below).
(function () {
  'use strict';
  document.documentElement.classList.add('js');

  document.addEventListener('change', function (event) {
    var target = event.target;
    if (target.matches && target.matches('select[data-autosubmit]') && target.form) {
      target.form.requestSubmit();
    }
    // A replica row's key field offers the keys of the Region just chosen.
    if (target.matches && target.matches('select[name="replica_region"]')) {
      var row = target.closest('.replica-row');
      var key = row && row.querySelector('input[name="replica_key"]');
      if (key) key.setAttribute('list', 'keys-' + target.value);
    }
  });

  document.addEventListener('htmx:beforeRequest', function (event) {
    var elt = event.detail && event.detail.elt;
    if (elt && elt.id === 'replication' && elt.querySelector('details[open]')) {
      event.preventDefault();
    }
  });

  document.addEventListener('keydown', function (event) {
    if (event.key !== 'Escape') return;
    document.querySelectorAll('details.menu[open]').forEach(function (menu) {
      menu.open = false;
      var summary = menu.querySelector('summary');
      if (summary) summary.focus();
    });
  });

  // One open menu at a time; a click elsewhere closes it.
  document.addEventListener('click', function (event) {
    document.querySelectorAll('details.menu[open]').forEach(function (menu) {
      if (!menu.contains(event.target)) menu.open = false;
    });
  });

  // Connection lost: a refresh or an action that htmx could not send (the server stopped or
  // is restarting) shows a notice and marks the replication status as not updating; the
  // section's own refresh keeps trying, and the first answer that arrives clears both.
  function connectionNotice() {
    var notice = document.getElementById('connection-notice');
    if (!notice) {
      notice = document.createElement('div');
      notice.id = 'connection-notice';
      var main = document.getElementById('main');
      if (!main) return null;
      main.insertBefore(notice, main.firstChild);
    }
    return notice;
  }

  document.addEventListener('htmx:sendError', function () {
    var notice = connectionNotice();
    if (!notice) return;
    notice.className = 'flash flash-error connection';
    notice.setAttribute('role', 'alert');
    notice.textContent = 'Connection to the Coffer server lost. Reconnecting\u2026 What this page shows may be out of date, and nothing you do here reaches the server until the connection is back.';
    document.documentElement.classList.add('offline');
  });

  document.addEventListener('htmx:afterOnLoad', function () {
    var root = document.documentElement;
    if (!root.classList.contains('offline')) return;
    root.classList.remove('offline');
    var notice = connectionNotice();
    if (!notice) return;
    notice.className = 'flash flash-ok connection';
    notice.setAttribute('role', 'status');
    notice.textContent = 'Connection to the Coffer server is back.';
    setTimeout(function () {
      if (!root.classList.contains('offline')) notice.remove();
    }, 5000);
  });
})();

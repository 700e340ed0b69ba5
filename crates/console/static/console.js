// Coffer console: small enhancements, hand-written (no build step). Every page works without
// this file; with it, the Region switcher switches on change, an open Actions menu pauses the
// replication section's refresh (so the menu does not close under the pointer), and Escape
// closes an open menu.
(function () {
  'use strict';
  document.documentElement.classList.add('js');

  document.addEventListener('change', function (event) {
    var target = event.target;
    if (target.matches && target.matches('select[data-autosubmit]') && target.form) {
      target.form.requestSubmit();
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
})();

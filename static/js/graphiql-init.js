/* GraphiQL for logged-in users. Requests go to this page's own URL with the session cookie and the CSRF token, so
   they act for the user's current account; programs use an API key instead. Nothing is loaded from elsewhere. */
(function () {
  "use strict";
  var root = document.getElementById("graphiql");
  var csrfToken = document.querySelector("[name=csrfmiddlewaretoken]").value;
  var defaultQuery = document.getElementById("graphiql-default-query").textContent;

  var fetcher = window.GraphiQL.createFetcher({
    url: root.getAttribute("data-endpoint"),
    headers: { "X-CSRFToken": csrfToken },
  });

  function PamingaGraphiQL() {
    var state = window.React.useState(defaultQuery);
    var query = state[0];
    var setQuery = state[1];
    var explorer = window.GraphiQLPluginExplorer.useExplorerPlugin({ query: query, onEdit: setQuery });
    return window.React.createElement(window.GraphiQL, {
      fetcher: fetcher,
      query: query,
      onEditQuery: setQuery,
      plugins: [explorer],
      defaultEditorToolsVisibility: true,
      isHeadersEditorEnabled: false,
      shouldPersistHeaders: false,
    });
  }

  window.ReactDOM.render(window.React.createElement(PamingaGraphiQL), root);
})();

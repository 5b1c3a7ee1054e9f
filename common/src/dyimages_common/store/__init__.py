"""The vector store behind one seam: neutral types (:mod:`.types`, :mod:`.points`, :mod:`.errors`), one
Protocol (:class:`.protocol.ImageStore`), one factory (:func:`.factory.open_store`), one folder per engine
(:mod:`.qdrant`: the server and qdrant-client's embedded mode; :mod:`.edge`: Qdrant Edge). Only an
engine's folder imports its client."""

// The function app and what it runs on: a user-assigned identity, the storage account (host
// state, the Durable Azure Storage backend and the deployment package), monitoring, the Flex
// Consumption plan and app, and the identity's role assignments. Optionally the Durable Task
// Scheduler (scheduler.bicep) replaces Azure Storage as the Durable backend.

@description('Region for every resource.')
param location string

@description('Tags for every resource.')
param tags object

@description('Unique, lowercase token that keeps global names (storage account, app) unique.')
param resourceToken string

@description('Python version of the Flex Consumption runtime.')
param pythonVersion string

@description('Memory of each instance, in MB.')
param instanceMemoryMB int

@description('Upper bound on instances.')
param maximumInstanceCount int

@description('Always-ready instances for the `durable` scale group.')
param durableAlwaysReadyInstances int

@description('WORKFLOW_TIMEOUT_SECONDS: 0 waits forever.')
param workflowTimeoutSeconds int

@description('WORKFLOW_RETENTION_DAYS.')
param workflowRetentionDays int

@description('WORKFLOW_RETENTION_SCHEDULE (NCRONTAB).')
param workflowRetentionSchedule string

@description('AzureStorage or DurableTaskScheduler.')
param durableBackend string

@description('Durable Task Scheduler SKU.')
param schedulerSku string

@description('Object id of the principal running azd; empty assigns it nothing.')
param principalId string

@description('User or ServicePrincipal: the kind of principalId.')
param principalType string

// One source of truth for the task hub: the name the app's host.json gives the extension. The
// Durable Task Scheduler's task hub resource must carry the same name.
var hostJson = loadJsonContent('../host.json')
var taskHubName = hostJson.extensions.durableTask.hubName

var useScheduler = durableBackend == 'DurableTaskScheduler'
// The queue trigger's queue and the poison queue the host moves failed messages to
// (workflow/queue_stop.py QUEUE_NAME, POISON_QUEUE_NAME). The trigger only checks that its queue
// exists, so the template creates both.
var stopQueueNames = [
  'workflow-stop'
  'workflow-stop-poison'
]
var deploymentContainerName = 'app-package'
var functionAppName = 'func-${resourceToken}'

// Built-in role definitions (ids are the same in every tenant).
var roles = {
  // Host storage (AzureWebJobsStorage) and the Durable Azure Storage backend's partition leases
  // need blob ownership; it also lets the platform read and write the deployment package.
  storageBlobDataOwner: 'b7e6dc6d-f1e8-4753-8033-0f276bb0955b'
  // Durable control and work-item queues; queue triggers and their poison queues.
  storageQueueDataContributor: '974c5e8b-45b9-4653-ba55-5f855dd0fb88'
  // Durable History and Instances tables.
  storageTableDataContributor: '0a9a7e1f-b9d0-4cc4-a60d-0319b160aaa3'
  // Entra-authenticated telemetry ingestion into Application Insights.
  monitoringMetricsPublisher: '3913510d-42f4-4e42-8a64-420c390055eb'
}
var storageDataRoles = [
  roles.storageBlobDataOwner
  roles.storageQueueDataContributor
  roles.storageTableDataContributor
]

resource identity 'Microsoft.ManagedIdentity/userAssignedIdentities@2023-01-31' = {
  name: 'id-${resourceToken}'
  location: location
  tags: tags
}

resource storage 'Microsoft.Storage/storageAccounts@2023-05-01' = {
  // checkov:skip=CKV_AZURE_35: the Flex Consumption app reaches this account over its public endpoint (this template has no virtual network); every request still needs an Entra token with a data role, since shared keys are disabled.
  // checkov:skip=CKV_AZURE_59: as CKV_AZURE_35: public network access without a virtual network; authentication is Entra-only.
  // checkov:skip=CKV_AZURE_206: host and Durable state is working state and the package is rebuilt by `azd deploy`; locally redundant storage keeps the idle cost down (choose ZRS/GRS for production data).
  // checkov:skip=CKV_AZURE_43: the name is 'st' + uniqueString(), 15 lowercase letters and digits, which checkov cannot evaluate.
  name: 'st${resourceToken}'
  location: location
  tags: tags
  kind: 'StorageV2'
  sku: {
    name: 'Standard_LRS'
  }
  properties: {
    allowSharedKeyAccess: false
    allowBlobPublicAccess: false
    defaultToOAuthAuthentication: true
    minimumTlsVersion: 'TLS1_2'
    supportsHttpsTrafficOnly: true
    publicNetworkAccess: 'Enabled'
    networkAcls: {
      defaultAction: 'Allow'
      bypass: 'AzureServices'
    }
  }
}

resource blobService 'Microsoft.Storage/storageAccounts/blobServices@2023-05-01' = {
  parent: storage
  name: 'default'
}

// Flex Consumption deploys from a zip in this container (functionAppConfig.deployment).
resource deploymentContainer 'Microsoft.Storage/storageAccounts/blobServices/containers@2023-05-01' = {
  parent: blobService
  name: deploymentContainerName
  properties: {
    publicAccess: 'None'
  }
}

resource queueService 'Microsoft.Storage/storageAccounts/queueServices@2023-05-01' = {
  parent: storage
  name: 'default'
}

resource stopQueues 'Microsoft.Storage/storageAccounts/queueServices/queues@2023-05-01' = [for name in stopQueueNames: {
  parent: queueService
  name: name
}]

// The person (or CI principal) running azd may put stop messages on, and read, the two stop
// queues with an Entra token (`az storage message put --auth-mode login`): shared keys are off.
// Scoped to those queues, not the account: the Durable backend's own queues stay closed.
resource userQueueRoles 'Microsoft.Authorization/roleAssignments@2022-04-01' = [for i in range(0, empty(principalId) ? 0 : length(stopQueueNames)): {
  name: guid(stopQueues[i].id, principalId, roles.storageQueueDataContributor)
  scope: stopQueues[i]
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', roles.storageQueueDataContributor)
    principalId: principalId
    principalType: principalType
  }
}]

resource storageRoleAssignments 'Microsoft.Authorization/roleAssignments@2022-04-01' = [for roleId in storageDataRoles: {
  name: guid(storage.id, identity.id, roleId)
  scope: storage
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', roleId)
    principalId: identity.properties.principalId
    principalType: 'ServicePrincipal'
  }
}]

resource logAnalytics 'Microsoft.OperationalInsights/workspaces@2023-09-01' = {
  name: 'log-${resourceToken}'
  location: location
  tags: tags
  properties: {
    sku: {
      name: 'PerGB2018'
    }
    retentionInDays: 30
  }
}

resource appInsights 'Microsoft.Insights/components@2020-02-02' = {
  name: 'appi-${resourceToken}'
  location: location
  tags: tags
  kind: 'web'
  properties: {
    Application_Type: 'web'
    WorkspaceResourceId: logAnalytics.id
    // Entra-only ingestion: the instrumentation key in the connection string cannot send
    // telemetry on its own, so the connection string is an address, not a credential.
    DisableLocalAuth: true
  }
}

resource monitoringRoleAssignment 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(appInsights.id, identity.id, roles.monitoringMetricsPublisher)
  scope: appInsights
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', roles.monitoringMetricsPublisher)
    principalId: identity.properties.principalId
    principalType: 'ServicePrincipal'
  }
}

resource plan 'Microsoft.Web/serverfarms@2024-04-01' = {
  // checkov:skip=CKV_AZURE_225: zone redundancy on Flex Consumption needs always-ready instances in every zone, which ends scale to zero; off by default to keep the idle cost near zero.
  name: 'plan-${resourceToken}'
  location: location
  tags: tags
  kind: 'functionapp'
  sku: {
    name: 'FC1'
    tier: 'FlexConsumption'
  }
  properties: {
    reserved: true
  }
}

module scheduler 'scheduler.bicep' = if (useScheduler) {
  name: 'scheduler'
  params: {
    location: location
    tags: tags
    name: 'dts-${resourceToken}'
    skuName: schedulerSku
    taskHubName: taskHubName
    principalId: identity.properties.principalId
  }
}

// Safe access (.?) on the conditional module: no BCP318, and '' when the scheduler is not deployed.
var schedulerEndpoint = scheduler.?outputs.endpoint ?? ''

// Identity-based host storage: service URIs plus the user-assigned identity, never a key.
var storageSettings = [
  { name: 'AzureWebJobsStorage__blobServiceUri', value: storage.properties.primaryEndpoints.blob }
  { name: 'AzureWebJobsStorage__queueServiceUri', value: storage.properties.primaryEndpoints.queue }
  { name: 'AzureWebJobsStorage__tableServiceUri', value: storage.properties.primaryEndpoints.table }
  { name: 'AzureWebJobsStorage__credential', value: 'managedidentity' }
  { name: 'AzureWebJobsStorage__clientId', value: identity.properties.clientId }
]

// Entra-only ingestion (DisableLocalAuth above): the connection string is an address, the
// authentication string names the identity that may write.
var monitoringSettings = [
  { name: 'APPLICATIONINSIGHTS_CONNECTION_STRING', value: appInsights.properties.ConnectionString }
  { name: 'APPLICATIONINSIGHTS_AUTHENTICATION_STRING', value: 'ClientId=${identity.properties.clientId};Authorization=AAD' }
]

var workflowSettings = [
  { name: 'WORKFLOW_TIMEOUT_SECONDS', value: string(workflowTimeoutSeconds) }
  { name: 'WORKFLOW_RETENTION_DAYS', value: string(workflowRetentionDays) }
  { name: 'WORKFLOW_RETENTION_SCHEDULE', value: workflowRetentionSchedule }
]

// The backend switch. The package deployed in scheduler mode carries a host.json naming the
// scheduler (azure.yaml's prepackage hook, scripts/stage_package.py): the scale controller reads
// the Durable configuration from that file, not from app settings. These documented host.json
// overrides (AzureFunctionsJobHost__<path>) say the same to the runtime, as the DTS emulator's
// local settings do.
var schedulerSettings = useScheduler ? [
  { name: 'DURABLE_TASK_SCHEDULER_CONNECTION_STRING', value: 'Endpoint=${schedulerEndpoint};Authentication=ManagedIdentity;ClientID=${identity.properties.clientId}' }
  { name: 'AzureFunctionsJobHost__extensions__durableTask__storageProvider__type', value: 'azureManaged' }
  { name: 'AzureFunctionsJobHost__extensions__durableTask__storageProvider__connectionStringName', value: 'DURABLE_TASK_SCHEDULER_CONNECTION_STRING' }
] : []

resource functionApp 'Microsoft.Web/sites@2024-04-01' = {
  // checkov:skip=CKV_AZURE_17: callers authenticate with function keys over HTTPS (AuthLevel.FUNCTION), not client certificates.
  // checkov:skip=CKV_AZURE_212: the app scales to zero at idle by design; durableAlwaysReadyInstances keeps instances warm when wanted.
  // checkov:skip=CKV_AZURE_213: a health check pings the app every minute, which would keep a scale-to-zero app awake and billed; the platform replaces failed instances itself.
  // checkov:skip=CKV_AZURE_222: the HTTP API is public by design (no virtual network here); every function but the OpenAPI document needs a function key.
  name: functionAppName
  location: location
  // azd finds the app to deploy the `api` service to by this tag.
  tags: union(tags, { 'azd-service-name': 'api' })
  kind: 'functionapp,linux'
  identity: {
    type: 'UserAssigned'
    userAssignedIdentities: {
      '${identity.id}': {}
    }
  }
  properties: {
    serverFarmId: plan.id
    httpsOnly: true
    publicNetworkAccess: 'Enabled'
    siteConfig: {
      minTlsVersion: '1.2'
      ftpsState: 'Disabled'
      http20Enabled: true
      appSettings: concat(storageSettings, monitoringSettings, workflowSettings, schedulerSettings)
    }
    functionAppConfig: {
      deployment: {
        storage: {
          type: 'blobContainer'
          value: '${storage.properties.primaryEndpoints.blob}${deploymentContainerName}'
          authentication: {
            type: 'UserAssignedIdentity'
            userAssignedIdentityResourceId: identity.id
          }
        }
      }
      scaleAndConcurrency: {
        instanceMemoryMB: instanceMemoryMB
        maximumInstanceCount: maximumInstanceCount
        alwaysReady: durableAlwaysReadyInstances > 0 ? [
          {
            name: 'durable'
            instanceCount: durableAlwaysReadyInstances
          }
        ] : []
      }
      runtime: {
        name: 'python'
        version: pythonVersion
      }
    }
  }
  dependsOn: [
    storageRoleAssignments
    monitoringRoleAssignment
    deploymentContainer
    stopQueues
  ]
}

output functionAppName string = functionApp.name
output functionAppUri string = 'https://${functionApp.properties.defaultHostName}'
output schedulerEndpoint string = schedulerEndpoint
output storageAccountName string = storage.name

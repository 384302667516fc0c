// Entry point for `azd up` / `azd provision`: one resource group holding the function app on the
// Flex Consumption plan and everything it needs. Every connection is identity-based: no key,
// connection string with a key, or SAS appears in an app setting or an output.
targetScope = 'subscription'

@minLength(1)
@maxLength(64)
@description('azd environment name; names the resource group and seeds the unique resource names.')
param environmentName string

// Regions that offer the Flex Consumption plan: the list of Azure-Samples/functions-quickstart-python-http-azd,
// infra/main.bicep at commit 947c194 (2025-05-07), read on 2026-12-04; a region outside it would
// fail half-way through `azd up`. Check or extend with `az functionapp list-flexconsumption-locations`.
@minLength(1)
@description('Region for every resource; it must offer the Flex Consumption plan (`az functionapp list-flexconsumption-locations`).')
@allowed([
  'australiaeast'
  'australiasoutheast'
  'brazilsouth'
  'canadacentral'
  'centralindia'
  'centralus'
  'eastasia'
  'eastus'
  'eastus2'
  'eastus2euap'
  'francecentral'
  'germanywestcentral'
  'italynorth'
  'japaneast'
  'koreacentral'
  'northcentralus'
  'northeurope'
  'norwayeast'
  'southafricanorth'
  'southcentralus'
  'southeastasia'
  'southindia'
  'spaincentral'
  'swedencentral'
  'uaenorth'
  'uksouth'
  'ukwest'
  'westcentralus'
  'westeurope'
  'westus'
  'westus2'
  'westus3'
])
@metadata({ azd: { type: 'location' } })
param location string

@description('Object id of the user (or CI service principal) running `azd`, which azd fills in (AZURE_PRINCIPAL_ID): it gets Storage Queue Data Contributor on the two stop queues, so `az storage message put --auth-mode login` works. Empty assigns nothing.')
param principalId string = ''

@description('Kind of principalId (AZURE_PRINCIPAL_TYPE): User when a person runs azd, ServicePrincipal in CI.')
@allowed(['User', 'ServicePrincipal'])
param principalType string = 'User'

@description('Python version of the Flex Consumption runtime (functionAppConfig.runtime).')
@allowed(['3.11', '3.12'])
param pythonVersion string = '3.11'

@description('Memory of each instance, in MB (Flex Consumption offers these sizes).')
@allowed([512, 2048, 4096])
param instanceMemoryMB int = 2048

@description('Upper bound on instances the app scales out to (Flex Consumption allows 40 to 1000).')
@minValue(40)
@maxValue(1000)
param maximumInstanceCount int = 100

@description('Always-ready instances for the `durable` scale group (orchestrations). 0, the default, scales to zero at idle: no compute billed, but the first orchestration episode after a quiet spell (a start, a stop, a timeout) waits for a cold start of several seconds. 1 is what Microsoft\'s Flex quickstart and Durable Task Scheduler samples recommend for Durable apps and bills that instance around the clock.')
@minValue(0)
@maxValue(10)
param durableAlwaysReadyInstances int = 0

@description('Seconds a workflow waits for its stop event before it ends timed out; 0 waits forever (WORKFLOW_TIMEOUT_SECONDS).')
@minValue(0)
param workflowTimeoutSeconds int = 0

@description('Days a finished workflow is kept before the retention timer purges it (WORKFLOW_RETENTION_DAYS). The deployment keeps 30 days by default; 0 keeps everything, which is what the app does when the setting is unset (local runs).')
@minValue(0)
@maxValue(36600)
param workflowRetentionDays int = 30

@description('NCRONTAB schedule of the retention timer trigger (WORKFLOW_RETENTION_SCHEDULE), in UTC.')
param workflowRetentionSchedule string = '0 30 2 * * *'

@description('Durable backend: AzureStorage (default: queues, tables and blobs in the app\'s storage account) or DurableTaskScheduler (a managed scheduler and task hub).')
@allowed(['AzureStorage', 'DurableTaskScheduler'])
param durableBackend string = 'AzureStorage'

@description('Durable Task Scheduler SKU, used only when durableBackend is DurableTaskScheduler.')
@allowed(['Consumption', 'Dedicated'])
param schedulerSku string = 'Consumption'

var tags = { 'azd-env-name': environmentName }
var resourceToken = toLower(uniqueString(subscription().id, environmentName, location))

resource rg 'Microsoft.Resources/resourceGroups@2024-03-01' = {
  name: 'rg-${environmentName}'
  location: location
  tags: tags
}

module app 'app.bicep' = {
  name: 'app'
  scope: rg
  params: {
    location: location
    tags: tags
    resourceToken: resourceToken
    pythonVersion: pythonVersion
    instanceMemoryMB: instanceMemoryMB
    maximumInstanceCount: maximumInstanceCount
    durableAlwaysReadyInstances: durableAlwaysReadyInstances
    workflowTimeoutSeconds: workflowTimeoutSeconds
    workflowRetentionDays: workflowRetentionDays
    workflowRetentionSchedule: workflowRetentionSchedule
    durableBackend: durableBackend
    schedulerSku: schedulerSku
    principalId: principalId
    principalType: principalType
  }
}

output AZURE_LOCATION string = location
output AZURE_TENANT_ID string = tenant().tenantId
output AZURE_RESOURCE_GROUP string = rg.name
output AZURE_FUNCTION_APP_NAME string = app.outputs.functionAppName
output SERVICE_API_NAME string = app.outputs.functionAppName
output SERVICE_API_URI string = app.outputs.functionAppUri
output DURABLE_BACKEND string = durableBackend
output DURABLE_TASK_SCHEDULER_ENDPOINT string = app.outputs.schedulerEndpoint
output AZURE_STORAGE_ACCOUNT_NAME string = app.outputs.storageAccountName
